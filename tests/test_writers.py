"""Output writers: every format parses back, times increase, JSON has the seed's shape."""

from __future__ import annotations

import json
import re

import pytest

from whisper_tune.errors import WhisperTuneError
from whisper_tune.inference.subtitles import SubtitleOptions, cut_cues, text_width
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


def flat(pairs: list[tuple[float, float]]) -> list[float]:
    """Time pairs as one list (pytest.approx compares no nested structures)."""
    return [t for pair in pairs for t in pair]


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
    assert flat(srt_times(srt)) == pytest.approx(flat(expected))
    assert flat(vtt_times(vtt)) == pytest.approx(flat(expected))
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
    assert flat(srt) == pytest.approx(flat(vtt)) and len(srt) >= 30
    seed = json.loads((tmp_path / f"{stem}.json").read_text(encoding="utf-8"))
    assert list(seed) == ["language", "duration", "results", "text", "transcription_options"]
    assert seed["transcription_options"]["compression_ratio_threshold"] == 2.4
    seed_times = [(r["start"], r["end"]) for r in seed["results"]]
    assert flat(seed_times) == pytest.approx(flat(srt), abs=0.006)
    assert seed["duration"] > 120 and srt[-1][1] <= seed["duration"]
    verbose = json.loads((tmp_path / f"{stem}.verbose.json").read_text(encoding="utf-8"))
    words = [w for s in verbose["segments"] for w in s["words"]]
    assert len(words) > 250
    assert all(a["start"] <= b["start"] for a, b in zip(words, words[1:], strict=False))
    lines = (tmp_path / f"{stem}.txt").read_text(encoding="utf-8").splitlines()
    assert lines == [r["text"] for r in seed["results"]]


# --- cues cut from word timings ----------------------------------------------------------


def spoken(text: str, start: float = 0.0, step: float = 0.5, sep: str = " ") -> Segment:
    """A segment whose words (``sep``-separated, or characters when ``sep`` is "") last
    ``step`` seconds each, back to back from ``start``."""
    tokens = text.split(sep) if sep else list(text)
    words = tuple(
        Word(start + i * step, start + (i + 1) * step, f"{sep}{token}", 0.9)
        for i, token in enumerate(tokens)
    )
    return Segment(start, words[-1].end, text, words=words)


def cue_list(segments, language: str = "en", **options) -> list[tuple[float, float, str]]:
    cues = cut_cues(segments, SubtitleOptions(**options), language)
    return [(c.start, c.end, c.text) for c in cues]


SENTENCE = "The weather forecast says it will snow tomorrow in the north."


def test_cues_split_at_the_line_width_across_segments():
    segments = (spoken(SENTENCE), spoken("Take a coat.", start=6.0))
    cues = cue_list(segments, max_line_width=20, max_line_count=1)
    assert [text for _, _, text in cues] == [
        "The weather forecast",
        "says it will snow",
        "tomorrow in the",
        "north. Take a coat.",  # one line may run across two segments
    ]
    assert cues[0][:2] == (0.0, 1.5) and cues[-1][:2] == (5.0, 7.5)
    assert " ".join(text for *_, text in cues) == f"{SENTENCE} Take a coat."
    assert all(a[1] <= b[0] for a, b in zip(cues, cues[1:], strict=False))


def test_width_alone_breaks_lines_inside_each_segment():
    segments = (spoken(SENTENCE), spoken("Take a coat.", start=6.0))
    cues = cue_list(segments, max_line_width=20)
    assert cues == [
        (0.0, 5.5, "The weather forecast\nsays it will snow\ntomorrow in the\nnorth."),
        (6.0, 7.5, "Take a coat."),
    ]


def test_line_count_groups_lines_into_cues():
    cues = cue_list([spoken(SENTENCE)], max_line_width=20, max_line_count=2)
    assert [text for *_, text in cues] == [
        "The weather forecast\nsays it will snow",
        "tomorrow in the\nnorth.",
    ]
    assert [(start, end) for start, end, _ in cues] == [(0.0, 3.5), (3.5, 5.5)]


def test_words_per_line_makes_one_line_cues_inside_segments():
    segments = (spoken(SENTENCE), spoken("Take a coat.", start=6.0))
    texts = [text for *_, text in cue_list(segments, max_words_per_line=4)]
    assert texts == [
        "The weather forecast says",
        "it will snow tomorrow",
        "in the north.",
        "Take a coat.",  # a new segment starts a new cue
    ]
    texts = [text for *_, text in cue_list(segments, max_words_per_line=4, max_line_count=2)]
    assert texts == [
        "The weather forecast says\nit will snow tomorrow",
        "in the north. Take\na coat.",
    ]


def test_a_long_pause_starts_a_new_cue():
    segments = (spoken("One two three."), spoken("Four five.", start=10.0))
    cues = cue_list(segments, max_line_width=40, max_line_count=2)
    assert cues == [(0.0, 1.5, "One two three."), (10.0, 11.0, "Four five.")]


def test_a_word_wider_than_the_line_stands_alone():
    cues = cue_list([spoken("a incomprehensibilities b")], max_line_width=5, max_line_count=1)
    assert [text for *_, text in cues] == ["a", "incomprehensibilities", "b"]


def test_highlight_underlines_each_word_as_it_is_spoken():
    words = (Word(0.0, 0.5, " Snow", 0.9), Word(1.0, 1.4, " tomorrow.", 0.9))
    cues = cue_list([Segment(0.0, 1.4, "Snow tomorrow.", words=words)], highlight_words=True)
    assert cues == [
        (0.0, 0.5, "<u>Snow</u> tomorrow."),
        (0.5, 1.0, "Snow tomorrow."),  # the gap between the words shows the plain line
        (1.0, 1.4, "Snow <u>tomorrow.</u>"),
    ]
    vtt = WriteVTT(options=SubtitleOptions(max_line_width=8, highlight_words=True)).format(
        Transcript((Segment(0.0, 1.4, "Snow tomorrow.", words=words),), "en", 2.0)
    )
    assert "00:01.000 --> 00:01.400\nSnow\n<u>tomorrow.</u>\n\n" in vtt


def test_cjk_words_are_characters_and_count_one_each():
    segment = spoken("今天天气很好，我们去公园散步吧。", step=0.25, sep="")
    cues = cue_list([segment], "zh", max_line_width=5, max_line_count=1)
    assert [text for *_, text in cues] == ["今天天气很", "好，我们去", "公园散步吧", "。"]
    assert cues[1][:2] == (1.25, 2.5)
    assert text_width("今天天气很") == 5 and text_width("ｗｈｉｓｐｅｒ") == 7
    assert text_width("ที่นี่") == 2  # Thai tone and vowel marks take no width
    assert text_width("e\u0301te\u0301") == 3  # a combining accent counts with its letter


def test_a_segment_without_words_falls_back_to_the_whole_segment():
    segments = (
        spoken("One two three four.", step=0.5),
        Segment(2.5, 9.0, "No word timings for this long stretch of speech."),
        spoken("Five six seven.", start=9.0),
    )
    cues = cue_list(segments, max_line_width=11, max_line_count=1)
    assert cues == [
        (0.0, 1.0, "One two"),
        (1.0, 2.0, "three four."),
        (2.5, 9.0, "No word timings for this long stretch of speech."),
        (9.0, 10.0, "Five six"),
        (10.0, 10.5, "seven."),
    ]


def test_subtitle_options_reach_the_writers_and_are_checked(tmp_path):
    transcript = Transcript((spoken(SENTENCE),), "en", 6.0)
    options = SubtitleOptions(max_line_width=20, max_line_count=1)
    get_writer("all", tmp_path, options)(transcript, "clip.wav")
    srt = (tmp_path / "clip.srt").read_text(encoding="utf-8")
    assert srt_times(srt) == [(0.0, 1.5), (1.5, 3.5), (3.5, 5.0), (5.0, 5.5)]
    assert len(vtt_times((tmp_path / "clip.vtt").read_text(encoding="utf-8"))) == 4
    assert WriteSRT().format(transcript).count("-->") == 1  # no options: one cue per segment
    with pytest.raises(WhisperTuneError, match="max_line_width must be at least 1"):
        SubtitleOptions(max_line_width=0)


def test_words_without_their_spaces_are_spaced_as_the_segment_text():
    """The engines strip words; lines take their spaces from the segment's text."""
    stripped = (
        Segment(
            0.0, 2.0, "我们明天 Pin it, 好吗", words=words_at("我们", "明天", "Pin", "it,", "好吗")
        ),
        Segment(2.0, 3.0, "好的", words=words_at("好的", start=2.0)),
    )
    cues = cue_list(stripped, "zh", max_line_width=40, max_line_count=1)
    assert [text for *_, text in cues] == ["我们明天 Pin it, 好吗好的"]
    english = (
        Segment(0.0, 1.0, "Snow is", words=words_at("Snow", "is")),
        Segment(1.0, 2.0, "coming.", words=words_at("coming.", start=1.0)),
    )
    assert cue_list(english, max_line_width=40, max_line_count=1)[0][2] == "Snow is coming."


def words_at(*texts: str, start: float = 0.0) -> tuple[Word, ...]:
    return tuple(Word(start + i * 0.4, start + (i + 1) * 0.4, t, 0.9) for i, t in enumerate(texts))
