"""The desktop app's controller and audio devices without any window, on the real tiny.en."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import numpy as np
import pytest

from whisper_tune.engine_settings import EngineSettings
from whisper_tune.errors import AudioError, WhisperTuneError
from whisper_tune.gui.controller import (
    Failed,
    ModelReady,
    RecognitionEnded,
    RecognitionStarted,
    SegmentDecoded,
    SourceAdded,
    SourceRecognised,
    create_controller,
    format_segment,
)
from whisper_tune.gui.devices import Player
from whisper_tune.inference.types import Segment, TranscribeOptions


def poll_until(controller, condition, timeout: float = 120.0) -> list:
    """Poll the controller (as the window's ``after`` loop does) until ``condition(events)``."""
    events: list = []
    deadline = time.monotonic() + timeout
    while not condition(events):
        assert time.monotonic() < deadline, f"timed out; events so far: {events}"
        events += controller.poll()
        time.sleep(0.02)
    return events


def test_format_segment():
    segment = Segment(start=61.5, end=64.25, text="Hello there.")
    assert format_segment(Segment(3725.0, 3726.5, "x"), True) == "[01:02:05.000 --> 01:02:06.500] x"
    assert format_segment(segment, timestamps=True) == "[01:01.500 --> 01:04.250] Hello there."
    assert format_segment(segment, timestamps=False) == "Hello there."


def test_controller_decodes_recognises_and_saves(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    wav = tmp_path / "morning.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(wav), "Good morning. The weather today is sunny and warm."],
        check=True,
    )
    controller = create_controller(EngineSettings("tiny.en"), TranscribeOptions(beam_size=1))
    try:
        with pytest.raises(WhisperTuneError, match="not loaded yet"):
            controller.recognise([1])
        controller.start()
        controller.open_files([wav, tmp_path / "missing.wav"])
        events = poll_until(
            controller,
            lambda ev: (
                controller.model_ready
                and sum(isinstance(e, (SourceAdded, Failed)) for e in ev) == 2
            ),
        )
        assert any(isinstance(e, ModelReady) and "tiny.en (ct2" in e.description for e in events)
        failures = [e.message for e in events if isinstance(e, Failed)]
        assert failures == [f"{tmp_path / 'missing.wav'}: audio file not found"]
        (source,) = controller.sources.values()
        assert source.name == "morning.wav" and source.duration > 2

        controller.recognise([source.id], language="en", remove_pun=True)
        assert controller.busy
        events = poll_until(controller, lambda ev: ev and isinstance(ev[-1], RecognitionEnded))
        kinds = [type(e) for e in events]
        assert kinds[0] is RecognitionStarted and kinds[-2:] == [SourceRecognised, RecognitionEnded]
        assert set(kinds[1:-2]) == {SegmentDecoded}
        assert not events[-1].cancelled and not controller.busy
        assert events[-3].progress > 0.8
        text = controller.transcript(source.id, timestamps=False)
        assert "sunny and warm" in text.lower() and "," not in text and "." not in text

        vtt = controller.save(source.id, tmp_path / "out.vtt")
        assert vtt.read_text(encoding="utf-8").startswith("WEBVTT")
        data = json.loads(controller.save(source.id, tmp_path / "out.json").read_text("utf-8"))
        assert data["language"] == "en" and data["duration"] == round(source.duration, 2)
        assert [r["text"] for r in data["results"]] == [s.text for s in source.segments]
        txt = controller.save(source.id, tmp_path / "out.txt").read_text(encoding="utf-8")
        assert txt == text + "\n"
        with pytest.raises(WhisperTuneError, match="cannot tell the format"):
            controller.save(source.id, tmp_path / "out.docx")
    finally:
        controller.close()


def test_player_resamples_to_the_output_rate_and_reports_missing_devices(monkeypatch):
    import sounddevice

    played = []
    monkeypatch.setattr(sounddevice, "query_devices", lambda kind: {"default_samplerate": 48000.0})
    monkeypatch.setattr(sounddevice, "play", lambda data, rate: played.append((data, rate)))
    Player().play(np.zeros(16000, dtype=np.float32))
    assert played[0][1] == 48000 and len(played[0][0]) == 48000

    def no_device(kind):
        raise sounddevice.PortAudioError("Error querying device -1")

    monkeypatch.setattr(sounddevice, "query_devices", no_device)
    with pytest.raises(AudioError, match="cannot play: no usable audio output"):
        Player().play(np.zeros(16000, dtype=np.float32))


def test_cli_reports_a_bad_language_and_a_missing_display(monkeypatch, capsys):
    from whisper_tune.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["gui", "--language", "klingon"])
    assert exited.value.code == 2
    assert "unknown language 'klingon'" in capsys.readouterr().err

    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["gui", "--model_path", "tiny.en"])
    assert exited.value.code == 2
    assert "the desktop app needs a display" in capsys.readouterr().err


@pytest.mark.parametrize("rate", [48000, 44100])
def test_live_microphone_blocks_resample_like_the_whole_signal(rate):
    from whisper_tune.audio import resample
    from whisper_tune.gui.devices import StreamResampler

    t = np.arange(rate) / rate
    signal = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)).astype(
        np.float32
    )
    resampler, sizes = StreamResampler(rate, 16000), np.random.default_rng(0).integers(50, 5000, 99)
    cuts = np.cumsum(sizes)[np.cumsum(sizes) < len(signal)]
    streamed = np.concatenate([resampler(block) for block in np.split(signal, cuts)])
    whole = resample(signal, rate, 16000)
    assert len(whole) - 400 < len(streamed) <= len(whole)  # at most 25 ms held back
    assert np.abs(streamed[100:] - whole[100 : len(streamed)]).max() < 1e-5
