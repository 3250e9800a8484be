"""The resumable per-file job: its JSONL log, the sink that writes outcomes, the local runner.

Fast: a fake worker, no model. Ray's runner over the same parts: tests/test_ray.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from whisper_tune.errors import WhisperTuneError
from whisper_tune.inference.file_jobs import FileOutcome, run_local
from whisper_tune.inference.files import collect_audio_files
from whisper_tune.inference.job_log import Entry, FileKey, JobLog, read_entries


def _files(folder, n):
    paths = []
    for i in range(n):
        path = folder / f"f{i}.wav"
        path.write_bytes(b"x" * (i + 1))
        paths.append(path)
    return paths


class _Upper:
    """A worker factory: each file's text upper-cased; a file holding 'poison' breaks the
    whole batch (it raises), a file holding 'bad' fails alone."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self):
        def work(paths):
            self.calls.append(list(paths))
            texts = [Path(p).read_text(encoding="utf-8", errors="replace") for p in paths]
            if any("poison" in t for t in texts):
                raise RuntimeError("decoder crashed")
            return [
                FileOutcome(error="bad file")
                if "bad" in t
                else FileOutcome(
                    result={"text": t.upper()}, audio_seconds=1.0, outputs={f"{i}.txt": t.upper()}
                )
                for i, t in enumerate(texts)
            ]

        return work


def test_a_rerun_skips_files_done_and_redoes_failed_and_changed_ones(tmp_path):
    a, b, c = _files(tmp_path, 3)
    log_path = tmp_path / "log.jsonl"
    with JobLog(log_path) as log:
        todo, skipped = log.todo([a, b, c, a])
        assert [k.audio_path for k in todo] == [str(a), str(b), str(c)] and skipped == 0
        assert log.record(Entry(FileKey.of(a), True, {"text": "A"}, worker="h:1"))
        assert log.record(Entry(FileKey.of(b), False, error="cannot decode"))
        assert not log.record(Entry(FileKey.of(a), True, {"text": "again"}))  # kept once
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert lines[0] == {
        "audio_path": str(a),
        "size": 1,
        "mtime": a.stat().st_mtime,
        "ok": True,
        "result": {"text": "A"},
        "worker": "h:1",
    }
    assert lines[1]["ok"] is False and lines[1]["error"] == "cannot decode" and len(lines) == 2

    c.write_bytes(b"changed")  # a new size: a new key
    os.utime(a, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns))  # same mtime: still done
    todo, skipped = JobLog(log_path).todo([a, b, c])
    assert [k.audio_path for k in todo] == [str(b), str(c)] and skipped == 1


def test_a_truncated_last_line_is_ignored_and_cut_before_the_next(tmp_path):
    (a, b) = _files(tmp_path, 2)
    log_path = tmp_path / "log.jsonl"
    good = Entry(FileKey.of(a), True, {"text": "A"}).to_json()
    log_path.write_text(good + "\n" + good[:25])  # killed while writing the second line
    assert [e.key for e in read_entries(log_path)] == [FileKey.of(a)]
    with JobLog(log_path) as log:
        log.record(Entry(FileKey.of(b), True, {"text": "B"}))
    assert [e.key for e in read_entries(log_path)] == [FileKey.of(a), FileKey.of(b)]
    assert all(json.loads(line) for line in log_path.read_text().splitlines())


def test_a_bad_line_inside_the_log_is_named(tmp_path):
    log_path = tmp_path / "log.jsonl"
    log_path.write_text('{"audio_path": "x"}\n{"broken\n')
    with pytest.raises(WhisperTuneError, match=r"log\.jsonl:1: not a job-log line"):
        JobLog(log_path)


def test_run_local_fails_only_the_file_that_breaks_its_batch_and_resumes(tmp_path):
    files = _files(tmp_path, 5)
    files[1].write_text("poison")
    files[3].write_text("bad")
    files[4].write_text("fine")
    factory = _Upper()
    log_path, out = tmp_path / "run" / "log.jsonl", tmp_path / "run"
    summary = run_local(files, factory, log_path, files_per_batch=2, output_dir=out)
    assert summary.total == 5 and summary.done == 3 and summary.audio_seconds == 3.0
    assert summary.failed == {
        str(files[1]): "RuntimeError: decoder crashed",
        str(files[3]): "bad file",
    }
    # the poisoned batch was tried whole, then file by file
    assert factory.calls[:3] == [[str(files[0]), str(files[1])], [str(files[0])], [str(files[1])]]
    assert (out / "0.txt").exists()
    with pytest.raises(WhisperTuneError, match=r"2 of 5 files failed.*f1\.wav: RuntimeError"):
        summary.check(log_path)

    files[1].write_text("cured")  # a rerun decodes only the failed files
    again = _Upper()
    summary = run_local(files, again, log_path, files_per_batch=2, output_dir=out)
    assert again.calls == [[str(files[1]), str(files[3])]]
    assert summary.skipped == 3 and summary.done == 1 and list(summary.failed) == [str(files[3])]
    ok = {e.key.audio_path for e in read_entries(log_path) if e.ok}
    assert ok == {str(f) for f in files} - {str(files[3])}


def test_a_manifest_gives_its_audio_files_once(tmp_path):
    a, b = _files(tmp_path, 2)
    manifest = tmp_path / "m.jsonl"
    lines = [
        {"audio_path": "f0.wav", "sentence": ""},
        {"audio_path": str(b)},
        {"audio_path": "f0.wav"},
    ]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert collect_audio_files([manifest]) == [a, b]
    manifest.write_text('{"audio_path": "missing.wav"}\n')
    with pytest.raises(WhisperTuneError, match=r"m\.jsonl:1: audio file not found"):
        collect_audio_files([manifest])
