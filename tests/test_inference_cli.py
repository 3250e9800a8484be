"""``whisper-tune transcribe``: seed JSON on stdout, folders, output files, clear errors."""

from __future__ import annotations

import json
import shutil

import pytest

from whisper_tune.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["transcribe", *args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_one_clip_prints_the_seed_json(capsys, english_clip):
    path, _ = english_clip
    code, out, _ = run(capsys, "--audio_path", str(path), "--use_int8", "--beam_size", "1")
    assert code == 0
    result = json.loads(out)
    assert list(result) == ["language", "duration", "results", "text", "transcription_options"]
    assert result["language"] == "en" and 2 < result["duration"] < 10
    assert all(list(r) == ["start", "end", "text"] for r in result["results"])
    assert "snow tomorrow" in result["text"].lower()
    assert result["transcription_options"]["condition_on_previous_text"] is True

    code, out, _ = run(capsys, "--audio_path", str(path), "--condition_on_previous_text", "false")
    assert code == 0
    assert json.loads(out)["transcription_options"]["condition_on_previous_text"] is False


def test_folder_to_json_lines_and_files(capsys, tmp_path, english_clip, silence_clip):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(english_clip[0], folder / "a.wav")
    shutil.copy(silence_clip, folder / "b.wav")
    (folder / "notes.txt").write_text("not audio", encoding="utf-8")
    code, out, _ = run(capsys, "--audio_path", str(folder), "--beam_size", "1")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["audio_path"] for line in lines] == [str(folder / "a.wav"), str(folder / "b.wav")]
    assert lines[1]["results"] == [] and lines[1]["text"] == ""  # silence: guard drops "you"
    code, out, _ = run(
        capsys,
        "--audio_path",
        str(folder),
        "--output_dir",
        str(tmp_path / "out"),
        "--output_format",
        "srt",
        "--beam_size",
        "1",
    )
    assert code == 0 and out == ""
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.srt", "b.srt"]
    assert "--> " in (tmp_path / "out" / "a.srt").read_text(encoding="utf-8")


def test_transformers_engine_from_an_hf_dir(capsys, english_clip):
    import torch

    from whisper_tune.resolve import bundled_hf_dir

    threads = torch.get_num_threads()
    code, out, _ = run(
        capsys,
        *("--audio_path", str(english_clip[0]), "--model_path", str(bundled_hf_dir("tiny.en"))),
        *("--beam_size", "1", "--output_format", "vtt", "--cpu_threads", "1"),
    )
    torch.set_num_threads(threads)
    assert code == 0 and out.startswith("WEBVTT\n\n") and "snow tomorrow" in out.lower()


def test_clear_errors(capsys, tmp_path, english_clip, tiny_whisper_en):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    code, out, err = run(capsys, "--audio_path", str(broken))
    assert code == 2 and out == "" and "broken.wav" in err and "Traceback" not in err
    code, out, err = run(
        capsys, "--audio_path", str(english_clip[0]), str(broken), "--beam_size", "1"
    )
    assert code == 2 and "1 of 2 files could not be read" in err and "broken.wav" in err
    assert json.loads(out)["audio_path"] == str(english_clip[0])  # the good file still done
    code, _, err = run(capsys, "--audio_path", str(tmp_path / "missing.wav"))
    assert code == 2 and "missing.wav: audio file not found" in err
    code, _, err = run(
        capsys,
        "--audio_path",
        str(english_clip[0]),
        "--model_path",
        str(tiny_whisper_en),
        "--engine",
        "ct2",
    )
    assert code == 2 and "Hugging Face model" in err
    code, _, err = run(capsys, "--audio_path", str(english_clip[0]), "--output_format", "all")
    assert code == 2 and "--output_dir" in err


def test_subtitle_cues_from_word_timings(capsys, english_clip):
    """--max_line_width/--max_line_count cut readable cues (word timestamps switched on by
    themselves); every word of the transcript survives, in order, inside the audio's time."""
    from whisper_tune.audio import SAMPLE_RATE, load_audio

    path, _ = english_clip
    common = ("--audio_path", str(path), "--beam_size", "1", "--use_int8")
    code, out, _ = run(
        capsys, *common, "--output_format", "srt", "--max_line_width", "20", "--max_line_count", "1"
    )
    assert code == 0
    cues = [block.split("\n") for block in out.strip().split("\n\n")]
    assert [int(cue[0]) for cue in cues] == list(range(1, len(cues) + 1))
    assert len(cues) >= 3 and all(len(cue) == 3 for cue in cues)  # number, times, one line
    assert all(0 < len(cue[2]) <= 20 for cue in cues)
    times = [[_srt_seconds(t) for t in cue[1].split(" --> ")] for cue in cues]
    assert all(start < end for start, end in times)
    assert all(a[1] <= b[0] for a, b in zip(times, times[1:], strict=False))
    duration = len(load_audio(path)) / SAMPLE_RATE
    assert times[0][0] >= 0 and times[-1][1] <= duration + 0.01
    code, out, _ = run(capsys, *common, "--output_format", "verbose_json", "--word_timestamps")
    words = [w["word"].strip() for s in json.loads(out)["segments"] for w in s["words"]]
    assert " ".join(cue[2] for cue in cues).split() == words
    assert "snow tomorrow" in " ".join(words).lower()


def _srt_seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


STYLE_PROMPT = "WEATHER FORECAST: SNOW TOMORROW!"  # upper case the model copies when it sees it


@pytest.fixture
def engine_args(request):
    """``--model_path``/``--cpu_threads`` for one engine on the bundled tiny.en."""
    import torch

    from whisper_tune.resolve import bundled_hf_dir

    threads = torch.get_num_threads()
    if request.param == "ct2":
        yield ["--use_int8"]
    else:
        yield ["--model_path", str(bundled_hf_dir("tiny.en")), "--cpu_threads", "1"]
    torch.set_num_threads(threads)


@pytest.mark.parametrize("engine_args", ["ct2", "transformers"], indirect=True)
def test_initial_prompt_and_hotwords_reach_the_decoder(capsys, english_clip, engine_args):
    """The clip decodes as "The weather forecast…"; a prompt in capitals makes the model
    write those words in capitals, so dropping the option on the way to the decoder fails."""
    base = ["--audio_path", str(english_clip[0]), "--beam_size", "1", *engine_args]
    code, out, _ = run(capsys, *base)
    assert code == 0 and "weather forecast" in json.loads(out)["text"].lower()
    assert "WEATHER FORECAST" not in json.loads(out)["text"]
    for flag in ("--initial_prompt", "--hotwords"):
        code, out, _ = run(capsys, *base, flag, STYLE_PROMPT)
        assert code == 0 and "WEATHER FORECAST" in json.loads(out)["text"], (flag, out)


def test_transformers_engine_vad_cuts_silence_in_the_original_timeline(
    capsys, english_clip, tmp_path
):
    """Speech at 6.0-8.9 s and 12.9-15.9 s in 21 s of faint noise: with --vad_filter the
    transformers engine decodes both sentences and reports times in the file's timeline."""
    import numpy as np

    from whisper_tune.audio import SAMPLE_RATE, load_audio, write_wav
    from whisper_tune.resolve import bundled_hf_dir

    speech = load_audio(english_clip[0])
    noise = np.random.default_rng(0).normal(0, 0.003, 21 * SAMPLE_RATE).astype(np.float32)
    for start in (6.0, 6.0 + 4.0 + len(speech) / SAMPLE_RATE):
        at = int(start * SAMPLE_RATE)
        noise[at : at + len(speech)] += speech
    write_wav(tmp_path / "padded.wav", noise)
    code, out, _ = run(
        capsys,
        *("--audio_path", str(tmp_path / "padded.wav"), "--vad_filter"),
        *("--model_path", str(bundled_hf_dir("tiny.en")), "--beam_size", "1"),
    )
    assert code == 0
    results = json.loads(out)["results"]
    assert len(results) == 2 and all("snow tomorrow" in r["text"].lower() for r in results)
    first, second = results
    assert 5.5 <= first["start"] <= 6.5 and 12.4 <= second["start"] <= 13.4
    assert second["end"] <= 16.5
