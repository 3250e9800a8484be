"""``prepare check`` finds every kind of bad line and names it by line number."""

from __future__ import annotations

import json

import pytest

from whisper_tune.audio import write_wav
from whisper_tune.cli import main
from whisper_tune.data.prepare.check import check_manifest
from whisper_tune.data.prepare.sharding import encode_audio


@pytest.fixture
def manifest(tmp_path, tone):
    write_wav(tmp_path / "good.wav", tone(1.5))
    write_wav(tmp_path / "silence.wav", tone(0.8) * 0)
    (tmp_path / "long.opus").write_bytes(encode_audio(tone(12.0), "opus"))
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 20)
    lines = [
        {"audio": {"path": "good.wav"}, "sentence": "a tone", "duration": 1.5, "language": "en"},
        {"audio": {"path": "silence.wav"}, "sentence": "", "language": "en"},
        {
            "audio": {"path": "long.opus", "start_time": 1.0, "end_time": 4.0},
            "sentence": "第一段",
            "language": "zh",
        },
        "{not json",
        {
            "audio": {"path": "long.opus", "start_time": 4.0, "end_time": 10.0},
            "sentence": "第二段",
            "language": "zh",
        },
        {"audio": {"path": "corrupt.wav"}, "sentence": "broken"},
        {"audio": {"path": "missing.wav"}, "sentence": "gone"},
        {"audio": {"path": "good.wav"}},
        {"audio": {"path": "long.opus", "start_time": 13.0, "end_time": 14.0}, "sentence": "x"},
        {"audio": {"path": "good.wav"}, "sentence": "wrong duration", "duration": 3.0},
    ]
    path = tmp_path / "train.jsonl"
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines)
        + "\n",
        encoding="utf-8",
    )
    return path


def test_check_reports_each_problem_by_line(manifest, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "check", str(manifest)])
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert f"{manifest}: 10 lines, 4 valid" in out
    for number, problem in [
        (4, "not valid JSON"),
        (6, "corrupt.wav: cannot decode audio"),
        (7, "missing.wav: audio file not found"),
        (8, "missing field 'sentence'"),
        (9, "slice starts at 13 s, after the audio's end (12.00 s)"),
        (10, "duration says 3 s but the audio lasts 1.50 s"),
    ]:
        assert f"{manifest}:{number}: " in out and problem in out, (number, problem)
    assert "problems: 6" in out
    assert "no-speech (empty sentence): 1" in out
    assert "languages: en 2, zh 2" in out


def test_check_statistics(manifest):
    report = check_manifest(manifest)
    assert not report.ok
    assert report.seconds == pytest.approx(1.5 + 0.8 + 3.0 + 6.0, abs=0.01)
    assert report.histogram == [1, 1, 1, 1, 0, 0, 0]  # 0.8 s, 1.5 s, 3 s, 6 s
    problems = "\n".join(report.problems)
    assert ":3:" not in problems and ":5:" not in problems  # the good slices

    quick = check_manifest(manifest, decode=False)  # header only: corrupt audio goes unseen
    assert len(quick.problems) == 4


def test_check_clean_manifest_exits_zero(tmp_path, tone, capsys):
    write_wav(tmp_path / "a.wav", tone(2.0))
    (tmp_path / "ok.jsonl").write_text(
        json.dumps({"audio": {"path": "a.wav"}, "sentence": "fine", "duration": 2.0}) + "\n"
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "check", str(tmp_path / "ok.jsonl")])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "problems: none" in out and "0.001 hours" in out and "languages: (not set) 1" in out
