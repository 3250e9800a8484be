"""Output writers: every format parses back, times increase, JSON has the seed's shape."""

from __future__ import annotations

import json
import re

import pytest

from whisper_tune.errors import WhisperTuneError
from whisper_tune.inference.types import Segment, Word
from whisper_tune.inference.writers import (
    WRITERS,
    Transcript,
    WriteSRT,
    WriteVTT,
    get_writer,
    seed_json,
    write_transcript,
)

SRT_CUE = re.compile(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n(.+)")
VTT_CUE = re.compile(
    r"(?:(\d\d):)?(\d\d):(\d\d)\.(\d{3}) --> (?:(\d\d):)?(\d\d):(\d\d)\.(\d{3})\n(.+)"
)


def make_transcript(language: str = "en") -> Transcript:
    words = (Word(0.0, 0.4, " Hello", 0.9), Word(0.4, 0.9, " there.", 0.8))
    segments = (
        Segment(0.0, 1.234, "Hello there.", words=words, avg_logprob=-0.2, tokens=(1, 2)),
        Segment(1.5, 62.0, "It takes a minute --> or so.", avg_logprob=-0.3),
        Segment(3599.5, 3725.25, "Past the hour\tmark.", avg_logprob=-0.1),
    )
    return Transcript(segments, language, 3726.0, 0.97)


def srt_times(text: str) -> list[tuple[float, float]]:
    def seconds(h, m, s, ms):
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    cues = SRT_CUE.findall(text)
    assert [int(c[0]) for c in cues] == list(range(1, len(cues) + 1))
    return [(seconds(*c[1:5]), seconds(*c[5:9])) for c in cues]


def vtt_times(text: str) -> list[tuple[float, float]]:
    def seconds(h, m, s, ms):
        return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    assert text.startswith("WEBVTT\n\n")
    return [(seconds(*c[0:4]), seconds(*c[4:8])) for c in VTT_CUE.findall(text)]


def check_increasing(times: list[tuple[float, float]]) -> None:
    assert times
    for start, end in times:
        assert start < end
    for (_, end), (start, _) in zip(times, times[1:], strict=False):
        assert end <= start + 1e-6


def test_srt_and_vtt_parse_back_with_exact_times():
    transcript = make_transcript()
    srt = WriteSRT().format(transcript)
    vtt = WriteVTT().format(transcript)
    expected = [(0.0, 1.234), (1.5, 62.0), (3599.5, 3725.25)]
    assert srt_times(srt) == pytest.approx(expected)
    assert vtt_times(vtt) == pytest.approx(expected)
    assert "00:01:02,000" in srt and "01:02.000" in vtt and "01:02:05.250" in vtt
    assert "-->" not in srt.split("\n")[6] and "minute -> or so" in srt  # arrows in text escaped
    check_increasing(srt_times(srt))


def test_json_is_the_seed_shape():
    data = seed_json(make_transcript())
    assert list(data) == ["language", "duration", "results", "text"]
    assert data["language"] == "en" and data["duration"] == 3726.0
    assert data["results"][0] == {"start": 0.0, "end": 1.23, "text": "Hello there."}
    assert all(list(r) == ["start", "end", "text"] for r in data["results"])
    assert data["text"] == "Hello there. It takes a minute --> or so. Past the hour\tmark."


def test_chinese_text_joins_without_spaces():
    segments = (Segment(0, 1, "近几年"), Segment(1, 2, "不但我用书给女儿压岁"))
    assert seed_json(Transcript(segments, "zh", 2.0))["text"] == "近几年不但我用书给女儿压岁"


def test_all_formats_written_atomically(tmp_path):
    written = get_writer("all", tmp_path / "out")(make_transcript(), "/data/meeting.mp3")
    names = sorted(p.name for p in written)
    assert names == sorted(f"meeting.{w.extension}" for w in WRITERS.values())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names  # no temp files left
    tsv = (tmp_path / "out" / "meeting.tsv").read_text(encoding="utf-8").splitlines()
    assert tsv[0] == "start\tend\ttext" and tsv[1] == "0\t1234\tHello there."
    assert tsv[3] == "3599500\t3725250\tPast the hour mark."
    assert (tmp_path / "out" / "meeting.txt").read_text(encoding="utf-8").count("\n") == 3
    verbose = json.loads((tmp_path / "out" / "meeting.verbose.json").read_text(encoding="utf-8"))
    assert verbose["segments"][0]["words"][1] == {
        "start": 0.4,
        "end": 0.9,
        "word": " there.",
        "probability": 0.8,
    }
    assert verbose["segments"][0]["tokens"] == [1, 2] and verbose["language_probability"] == 0.97
    seed = json.loads((tmp_path / "out" / "meeting.json").read_text(encoding="utf-8"))
    assert seed == seed_json(make_transcript())


def test_write_transcript_follows_the_extension(tmp_path):
    segments = make_transcript().segments
    srt = write_transcript(tmp_path / "a.srt", segments, "en")
    assert srt_times(srt.read_text(encoding="utf-8"))[0] == (0.0, 1.234)
    data = json.loads(write_transcript(tmp_path / "a.json", segments, "en").read_text("utf-8"))
    assert data["duration"] == 3725.25  # the last segment's end when no duration is given
    with pytest.raises(WhisperTuneError, match="extension"):
        write_transcript(tmp_path / "a.docx", segments, "en")
    with pytest.raises(WhisperTuneError, match="unknown output format"):
        get_writer("pdf", tmp_path)


@pytest.mark.slow
def test_real_long_transcription_in_every_format(long_english_file, tmp_path):
    from whisper_tune.cli import main

    path, _ = long_english_file
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "transcribe",
                "--audio_path",
                str(path),
                "--output_dir",
                str(tmp_path),
                "--output_format",
                "all",
                "--beam_size",
                "1",
                "--use_int8",
                "--word_timestamps",
            ]
        )
    assert exit_info.value.code == 0
    stem = path.stem
    srt = srt_times((tmp_path / f"{stem}.srt").read_text(encoding="utf-8"))
    vtt = vtt_times((tmp_path / f"{stem}.vtt").read_text(encoding="utf-8"))
    check_increasing(srt)
    assert srt == pytest.approx(vtt) and len(srt) >= 30
    seed = json.loads((tmp_path / f"{stem}.json").read_text(encoding="utf-8"))
    assert list(seed) == ["language", "duration", "results", "text"]
    assert [(r["start"], r["end"]) for r in seed["results"]] == pytest.approx(srt, abs=0.006)
    assert seed["duration"] > 120 and srt[-1][1] <= seed["duration"]
    verbose = json.loads((tmp_path / f"{stem}.verbose.json").read_text(encoding="utf-8"))
    words = [w for s in verbose["segments"] for w in s["words"]]
    assert len(words) > 250
    assert all(a["start"] <= b["start"] for a, b in zip(words, words[1:], strict=False))
    lines = (tmp_path / f"{stem}.txt").read_text(encoding="utf-8").splitlines()
    assert lines == [r["text"] for r in seed["results"]]
