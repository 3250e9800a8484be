"""Converters for layouts people already have, each on a small generated example."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from whisper_tune.audio import load_audio, write_wav
from whisper_tune.cli import main
from whisper_tune.data.manifest import read_manifest
from whisper_tune.data.prepare.audiofolder import prepare_audiofolder
from whisper_tune.data.prepare.commonvoice import prepare_commonvoice
from whisper_tune.data.prepare.kaldi import prepare_kaldi
from whisper_tune.data.prepare.ljspeech import prepare_ljspeech
from whisper_tune.data.prepare.subtitles import parse_subtitles, prepare_subtitles
from whisper_tune.errors import WhisperTuneError


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_mp3(path: Path, audio: np.ndarray) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=16000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            (audio * 32767).astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    path.write_bytes(buffer.getvalue())


def test_audiofolder(tmp_path, tone):
    root = tmp_path / "folder"
    for name, seconds in (
        ("train/a.wav", 0.5),
        ("train/b.wav", 0.75),
        ("test/c.wav", 1.0),
        ("validation/d.wav", 1.25),
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_wav(root / name, tone(seconds))
    (root / "metadata.csv").write_text(
        "file_name,transcription,language\n"
        'train/a.wav,"hello, world",en\ntrain/b.wav,你好,zh\ntest/c.wav,test clip,\n',
        encoding="utf-8",
    )
    (root / "validation" / "metadata.jsonl").write_text(
        json.dumps({"file_name": "d.wav", "transcription": "checked"}) + "\n", encoding="utf-8"
    )
    report = prepare_audiofolder(root, tmp_path / "out", language="English")
    assert sorted(Path(p).name for p in report.outputs) == [
        "test.jsonl",
        "train.jsonl",
        "validation.jsonl",
    ]
    train = records(tmp_path / "out" / "train.jsonl")
    assert [(r["sentence"], r["language"], r["duration"]) for r in train] == [
        ("hello, world", "en", 0.5),
        ("你好", "zh", 0.75),
    ]
    assert records(tmp_path / "out" / "test.jsonl")[0]["language"] == "en"  # the default
    assert records(tmp_path / "out" / "validation.jsonl")[0]["duration"] == 1.25

    (root / "metadata.csv").write_text("file_name,words\ntrain/a.wav,x\n", encoding="utf-8")
    with pytest.raises(WhisperTuneError, match="--text_column"):
        prepare_audiofolder(root, tmp_path / "other")
    with pytest.raises(
        WhisperTuneError, match=r"validation/metadata.jsonl:1: missing column 'words'"
    ):
        prepare_audiofolder(root, tmp_path / "other", text_column="words")
    (root / "validation" / "metadata.jsonl").unlink()
    assert prepare_audiofolder(root, tmp_path / "other", text_column="words").outputs


def test_ljspeech(tmp_path, tone):
    root = tmp_path / "LJSpeech-1.1"
    (root / "wavs").mkdir(parents=True)
    lines = []
    for index in range(10):
        key = f"LJ001-{index + 1:04d}"
        write_wav(root / "wavs" / f"{key}.wav", tone(0.3 + index / 10))
        lines.append(f"{key}|Printing, in {1860 + index}.|Printing, in eighteen sixty-{index}.")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "prepare",
                "ljspeech",
                "--folder",
                str(root),
                "--annotation_dir",
                str(tmp_path),
                "--test_ratio",
                "0.2",
            ]
        )
    assert exit_info.value.code == 0
    train, test = records(tmp_path / "train.jsonl"), records(tmp_path / "test.jsonl")
    assert (len(train), len(test)) == (8, 2)
    assert {r["audio"]["path"] for r in train}.isdisjoint(r["audio"]["path"] for r in test)
    assert train[0]["sentence"].startswith("Printing, in 18") and train[0]["language"] == "en"

    again = prepare_ljspeech(root, tmp_path / "again", test_ratio=0.2, normalized_text=True)
    assert len(again.outputs) == 2
    test_again = records(tmp_path / "again" / "test.jsonl")
    assert [Path(r["audio"]["path"]).name for r in test_again] == [
        Path(r["audio"]["path"]).name for r in test
    ]  # the same seeded draw
    assert "eighteen sixty" in test_again[0]["sentence"]


def test_commonvoice(tmp_path, tone):
    release = tmp_path / "cv-corpus" / "zh-CN"
    header = (
        "client_id\tpath\tsentence_id\tsentence\tup_votes\tdown_votes\tage\tgender\t"
        "accents\tvariant\tlocale\tsegment\n"
    )
    rows = []
    for index in range(3):
        name = f"common_voice_zh-CN_{index}.mp3"
        write_mp3(release / "clips" / name, tone(1.0 + index / 2, 300 + 100 * index))
        rows.append(f'c{index}\t{name}\ts{index}\t第{index}句 "话"\t2\t0\t\t\t\t\tzh-CN\t\n')
    (release / "train.tsv").write_text(header + "".join(rows), encoding="utf-8")
    # the release lists durations for some clips; the rest are decoded
    (release / "clip_durations.tsv").write_text(
        "clip\tduration[ms]\ncommon_voice_zh-CN_0.mp3\t1000\n", encoding="utf-8"
    )
    report = prepare_commonvoice(release / "train.tsv", annotation_dir=tmp_path / "out")
    lines = records(tmp_path / "out" / "train.jsonl")
    assert report.outputs and len(lines) == 3
    assert [r["sentence"] for r in lines] == ['第0句 "话"', '第1句 "话"', '第2句 "话"']
    assert {r["language"] for r in lines} == {"zh"}
    assert lines[0]["duration"] == 1.0
    assert lines[2]["duration"] == pytest.approx(2.0, abs=0.06)

    (release / "clips" / "common_voice_zh-CN_0.mp3").unlink()  # listed in clip_durations.tsv
    report = prepare_commonvoice(
        [release / "train.tsv"], annotation_dir=tmp_path / "out", language="yue", overwrite=True
    )
    assert report.outputs[str(tmp_path / "out" / "train.jsonl")] == 2
    assert "common_voice_zh-CN_0.mp3: audio file not found" in report.summary()
    assert {r["language"] for r in records(tmp_path / "out" / "train.jsonl")} == {"yue"}


def test_kaldi(tmp_path, tone, monkeypatch):
    recipe = tmp_path / "recipe"
    data = recipe / "data" / "train"
    data.mkdir(parents=True)
    write_wav(recipe / "rec1.wav", tone(4.0))
    write_wav(tmp_path / "rec2.wav", tone(2.0, 600))
    (data / "wav.scp").write_text(f"rec1 rec1.wav\nrec2 {tmp_path / 'rec2.wav'}\n")
    (data / "segments").write_text("utt1 rec1 0.0 1.5\nutt2 rec1 1.5 3.9\nutt3 rec2 0.2 1.8\n")
    (data / "text").write_text("utt1 甚至 出现 交易\nutt2 hello there\n", encoding="utf-8")
    report = prepare_kaldi(data, tmp_path / "out", audio_root=recipe, language="zh")
    lines = records(tmp_path / "out" / "train.jsonl")
    assert [(r["sentence"], r["audio"]["start_time"], r["audio"]["end_time"]) for r in lines] == [
        ("甚至出现交易", 0.0, 1.5),
        ("hello there", 1.5, 3.9),
    ]
    assert "no line for 'utt3'" in report.summary()
    utterances, _ = read_manifest(tmp_path / "out" / "train.jsonl")
    assert len(load_audio(utterances[1].audio_path, 1.5, 3.9)) == 38400

    plain = recipe / "data" / "test"
    plain.mkdir()
    (plain / "wav.scp").write_text("rec1 rec1.wav\n")
    (plain / "text").write_text("rec1 whole file\n")
    monkeypatch.chdir(recipe)  # Kaldi paths are relative to the recipe folder by default
    prepare_kaldi(plain, tmp_path / "out")
    assert records(tmp_path / "out" / "test.jsonl")[0]["duration"] == 4.0

    (plain / "wav.scp").write_text("rec1 rec1.wav\nrec2 sox in.flac -t wav - |\n")
    with pytest.raises(WhisperTuneError, match=r"wav.scp:2: only plain audio file paths"):
        prepare_kaldi(plain, tmp_path / "out", overwrite=True)


SRT = """1
00:00:00,500 --> 00:00:01,500
<i>First</i> cue,
second line

2
00:00:02,000 --> 00:00:03,250
{\\an8}Tom &amp; Jerry

3
00:00:03,500 --> 00:00:03,900


4
00:00:04,000 --> 00:00:09,000
runs past the end
"""

VTT = """WEBVTT - lecture

NOTE this block is a comment

intro
00:00.200 --> 00:01.000 align:start position:10%
大家好

00:01.100 --> 00:02.400
今天讲 <b>语音</b>
"""


def test_subtitles(tmp_path, tone):
    root = tmp_path / "recordings"
    root.mkdir()
    write_wav(root / "talk.wav", tone(5.0))
    (root / "talk.srt").write_text(SRT, encoding="utf-8")
    write_mp3(root / "lecture.mp3", tone(3.0, 500))
    (root / "lecture.vtt").write_text(VTT, encoding="utf-8")
    (root / "orphan.srt").write_text(SRT, encoding="utf-8")

    cues = parse_subtitles(root / "talk.srt")
    assert [(c.start, c.end, c.text) for c in cues][:2] == [
        (0.5, 1.5, "First cue, second line"),
        (2.0, 3.25, "Tom & Jerry"),
    ]
    report = prepare_subtitles(root, tmp_path / "out", language="en")
    lines = records(tmp_path / "out" / "train.jsonl")
    assert [(r["sentence"], r["audio"]["start_time"], r["audio"]["end_time"]) for r in lines] == [
        ("大家好", 0.2, 1.0),
        ("今天讲 语音", 1.1, 2.4),
        ("First cue, second line", 0.5, 1.5),
        ("Tom & Jerry", 2.0, 3.25),
        ("runs past the end", 4.0, 5.0),
    ]
    assert "orphan.srt: no audio file with the same name" in report.summary()

    prepare_subtitles(root, tmp_path / "out", name="windows", timestamps=True, max_duration=4)
    windows = records(tmp_path / "out" / "windows.jsonl")
    assert windows[0]["sentences"] == [
        {"start": 0.0, "end": 0.8, "text": "大家好"},
        {"start": 0.9, "end": 2.2, "text": "今天讲 语音"},
    ]
    assert windows[1]["sentence"] == "First cue, second line Tom & Jerry"

    (root / "talk.srt").write_text("1\n00:00:01,000 --> 00:00:x\nbad\n", encoding="utf-8")
    with pytest.raises(WhisperTuneError, match=r"talk.srt:2: cannot read the cue times"):
        prepare_subtitles(root, tmp_path / "bad")
