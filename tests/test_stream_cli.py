"""``whisper-tune stream``: a file played in at real-time speed, the live terminal view."""

from __future__ import annotations

import io
import json
import time

import pytest

from whisper_tune.cli import main
from whisper_tune.inference import Word
from whisper_tune.inference.live import ConsoleView
from whisper_tune.inference.streaming import StreamUpdate, Turn
from whisper_tune.text import normalize_english


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["stream", *args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_file_played_in_real_time_prints_turns_and_json(capsys, english_clip):
    path, text = english_clip
    started = time.monotonic()
    code, out, err = run(
        capsys, "--audio_path", str(path), "--realtime", "--beam_size", "1",
        "--output_format", "json",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    result = json.loads(out)
    assert code == 0
    assert elapsed >= result["duration"] - 0.2  # played in no faster than real time
    assert normalize_english(result["text"]) == normalize_english(text)
    assert err.count("-->") == len(result["results"]) >= 1  # live turn lines went to stderr


def test_missing_file_or_microphone_is_a_one_line_error(capsys, tmp_path, monkeypatch):
    code, _, err = run(capsys, "--audio_path", str(tmp_path / "none.wav"))
    assert code == 2
    assert "none.wav" in err and "Traceback" not in err
    import sounddevice

    def no_device(**_):
        raise sounddevice.PortAudioError("Error querying device -1")

    monkeypatch.setattr(sounddevice, "query_devices", no_device)
    code, _, err = run(capsys, "--beam_size", "1")
    assert code == 2
    assert err.startswith("whisper-tune stream: error: cannot record: no usable microphone")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def words(*texts: str, start: float = 0.0) -> tuple[Word, ...]:
    return tuple(Word(start + i, start + i + 0.5, t, 1.0) for i, t in enumerate(texts))


def test_terminal_rewrites_the_line_in_place_and_pipes_get_turns_only():
    updates = [
        StreamUpdate(partial=words("hello", "word")),
        StreamUpdate(committed=words("hello"), partial=words("world")),
        StreamUpdate(committed=words("world", start=1), turn=Turn(0, 2, words("hello", "world"))),
    ]
    terminal, pipe = FakeTerminal(), io.StringIO()
    for out in (terminal, pipe):
        view = ConsoleView(out)
        for update in updates:
            view(update)
    screen = terminal.getvalue()
    assert "\r\033[Khello \033[90mworld\033[0m" in screen  # committed, then grey partial
    assert screen.endswith("\r\033[K[00:00.0 --> 00:02.0] hello world\n")
    assert pipe.getvalue() == "[00:00.0 --> 00:02.0] hello world\n"
