"""WenetSpeech: long opus recordings and a JSON in the corpus' schema, run through the preparer."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from whisper_tune.audio import load_audio
from whisper_tune.cli import main
from whisper_tune.data.manifest import read_manifest
from whisper_tune.data.prepare import json_stream
from whisper_tune.data.prepare.json_stream import iter_json_array
from whisper_tune.data.prepare.sharding import encode_audio
from whisper_tune.data.prepare.wenetspeech import prepare_wenetspeech
from whisper_tune.errors import WhisperTuneError


def _segment(aid, n, begin, end, text, subsets, confidence=1.0):
    return {
        "sid": f"{aid}_S{n:05d}",
        "confidence": confidence,
        "begin_time": begin,
        "end_time": end,
        "text": text,
        "subsets": subsets,
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two opus recordings plus one entry whose audio was never downloaded."""
    import numpy as np

    root = tmp_path_factory.mktemp("wenetspeech")
    t = np.arange(16000 * 6) / 16000
    recordings = {
        "Y0000000000_--5llN02F84": ("audio/train/youtube/B00000/Y0000000000_--5llN02F84.opus", 6.0),
        "X0000000001_100208999": ("audio/dev/podcast/B00000/X0000000001_100208999.opus", 4.0),
    }
    for index, (_aid, (path, seconds)) in enumerate(recordings.items()):
        audio = 0.3 * np.sin(2 * np.pi * (300 + 200 * index) * t[: int(seconds * 16000)])
        (root / path).parent.mkdir(parents=True)
        (root / path).write_bytes(encode_audio(audio.astype(np.float32), "opus"))
    train_aid, dev_aid = recordings
    audios = [
        {
            "aid": train_aid,
            "duration": 6.0,
            "md5": "x",
            "path": recordings[train_aid][0],
            "source": "youtube",
            "tags": ["drama"],
            "url": "https://example.invalid",
            "segments": [
                _segment(train_aid, 2, 3.0, 4.2, "这些日子住得还习惯吧", ["{M}", "{L}"]),
                _segment(train_aid, 0, 0.5, 1.5, "怎么样", ["{S}", "{M}", "{L}"]),
                _segment(train_aid, 1, 1.7, 2.9, "还行", ["{S}", "{M}", "{L}"], confidence=0.6),
                _segment(train_aid, 3, 4.4, 5.9, "挺好的", ["{S}", "{M}", "{L}"]),
            ],
        },
        {
            "aid": dev_aid,
            "duration": 4.0,
            "path": recordings[dev_aid][0],
            "source": "podcast",
            "segments": [
                _segment(dev_aid, 0, 0.2, 1.8, "大家好", ["{DEV}"]),
                _segment(dev_aid, 1, 2.0, 3.9, "欢迎收听", ["{DEV}"]),
            ],
        },
        {
            "aid": "Y0000000002_missing",
            "path": "audio/train/youtube/B00001/missing.opus",
            "segments": [_segment("Y0000000002_missing", 0, 0.0, 1.0, "缺", ["{S}"])],
        },
    ]
    document = {
        "dataset": "WenetSpeech",
        "language": "Chinese",
        "version": "1.0.0",
        "audios": audios,
        "description": "tail key after the array",
    }
    (root / "WenetSpeech.json").write_text(
        json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    return root


def test_wenetspeech_subsets_to_slices(corpus, tmp_path, capsys):
    json_path = corpus / "WenetSpeech.json"
    before = hashlib.sha256(json_path.read_bytes()).hexdigest()
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "prepare",
                "wenetspeech",
                "--wenetspeech_json",
                str(json_path),
                "--annotation_dir",
                str(tmp_path),
                "--subsets",
                "S,M,DEV,TEST_NET",
            ]
        )
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "missing.opus: audio file not found (1 segments)" in out
    assert "1 segments below confidence 0.95 dropped" in out
    assert hashlib.sha256(json_path.read_bytes()).hexdigest() == before

    def texts(name):
        lines = (tmp_path / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["sentence"] for line in lines]

    assert texts("train_s") == ["怎么样", "挺好的"]  # low confidence "还行" dropped, time order
    assert texts("train_m") == ["怎么样", "这些日子住得还习惯吧", "挺好的"]
    assert texts("dev") == ["大家好", "欢迎收听"]
    assert texts("test_net") == []
    utterances, _ = read_manifest(tmp_path / "train_m.jsonl")
    second = utterances[1]
    assert (second.start_time, second.end_time, second.duration) == (3.0, 4.2, 1.2)
    assert second.language == "zh"
    audio = load_audio(second.audio_path, second.start_time, second.end_time)
    assert len(audio) / 16000 == pytest.approx(1.2, abs=0.01)


def test_wenetspeech_timestamps_merge_windows(corpus, tmp_path):
    report = prepare_wenetspeech(
        corpus / "WenetSpeech.json",
        annotation_dir=tmp_path,
        subsets=["{M}", "dev"],
        timestamps=True,
        max_duration=3.0,
    )
    # the dropped low-confidence "还行" separates the first segment from the rest, which fit
    # in one window of at most 3 s (3.0 -> 5.9) with a 0.2 s gap
    assert report.outputs[str(tmp_path / "train_m.jsonl")] == 2
    lines = [json.loads(x) for x in (tmp_path / "train_m.jsonl").read_text("utf-8").splitlines()]
    assert [line["sentence"] for line in lines] == ["怎么样", "这些日子住得还习惯吧挺好的"]
    merged = lines[1]
    assert (merged["audio"]["start_time"], merged["audio"]["end_time"]) == (3.0, 5.9)
    assert merged["sentences"] == [
        {"start": 0.0, "end": 1.2, "text": "这些日子住得还习惯吧"},
        {"start": 1.4, "end": 2.9, "text": "挺好的"},
    ]
    assert lines[0]["sentences"] == [{"start": 0.0, "end": 1.0, "text": "怎么样"}]
    dev = [json.loads(x) for x in (tmp_path / "dev.jsonl").read_text("utf-8").splitlines()]
    assert [line["sentence"] for line in dev] == ["大家好", "欢迎收听"]  # 3.7 s > max_duration

    prepare_wenetspeech(
        corpus / "WenetSpeech.json",
        annotation_dir=tmp_path / "long",
        subsets="DEV",
        timestamps=True,
    )
    dev = [json.loads(x) for x in (tmp_path / "long/dev.jsonl").read_text("utf-8").splitlines()]
    assert len(dev) == 1 and dev[0]["duration"] == pytest.approx(3.7)
    assert dev[0]["sentence"] == "大家好欢迎收听"


def test_wenetspeech_rejects_bad_input(corpus, tmp_path):
    with pytest.raises(WhisperTuneError, match="unknown WenetSpeech subset"):
        prepare_wenetspeech(corpus / "WenetSpeech.json", annotation_dir=tmp_path, subsets="XL")
    broken = tmp_path / "broken.json"
    broken.write_text(
        '{"audios": [{"aid": "a", "path": "x.opus", "segments": []}, {"aid": ', encoding="utf-8"
    )
    with pytest.raises(WhisperTuneError, match="broken.json"):
        prepare_wenetspeech(broken, annotation_dir=tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.jsonl"))  # nothing half-written is left


def test_json_stream_matches_json_load_across_chunk_boundaries(corpus, monkeypatch):
    monkeypatch.setattr(json_stream, "_CHUNK", 7)  # every value straddles reads
    path = corpus / "WenetSpeech.json"
    expected = json.loads(path.read_text(encoding="utf-8"))["audios"]
    assert [item for item, _ in iter_json_array(path, "audios")] == expected
    number_split = Path(path.parent / "numbers.json")
    number_split.write_text('{"version": 1234567, "audios": [1.25, 3, {"a": [1, 2]}], "z": 0}')
    assert [item for item, _ in iter_json_array(number_split, "audios")] == [1.25, 3, {"a": [1, 2]}]
    with pytest.raises(WhisperTuneError, match="no top-level 'segments' array"):
        list(iter_json_array(number_split, "segments"))
