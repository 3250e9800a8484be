"""Per-file jobs, run here or on Ray: a worker turns a batch of files into one outcome each,
and a sink writes each outcome as it arrives (its output files, then its job-log line).

A worker is built once per process by a *worker factory* (a picklable callable without
arguments, so a Ray actor can build its own and load the model once); it takes a batch of
paths and returns a :class:`FileOutcome` per path, in order. A file that makes the whole
batch raise is retried alone, so one bad file fails only itself. See
:func:`whisper_tune.inference.ray_runner.run_on_ray` for the same job on a Ray cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from whisper_tune.errors import WhisperTuneError
from whisper_tune.fsutil import atomic_write_text
from whisper_tune.inference.job_log import Entry, FileKey, JobLog


@dataclass(frozen=True)
class FileOutcome:
    """What a worker made of one file: a ``result`` record (JSON-able) or an ``error``."""

    result: dict[str, Any] | None = None
    error: str | None = None
    audio_seconds: float = 0.0  # for the progress bar's audio-hours/s
    outputs: Mapping[str, str] = field(default_factory=dict)  # file name -> text to write

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> FileOutcome:
        return cls(**json.loads(text))


class FileWorker(Protocol):
    def __call__(self, paths: Sequence[str]) -> Sequence[FileOutcome]: ...


WorkerFactory = Callable[[], FileWorker]


def worker_id() -> str:
    """``host:pid`` of this process, recorded with each file it decodes."""
    return f"{socket.gethostname()}:{os.getpid()}"


def outcomes_of(worker: FileWorker, paths: Sequence[str]) -> list[FileOutcome]:
    """``worker(paths)``; where the batch raises, each file alone, so only the file that
    breaks decoding fails (its error recorded, the job goes on)."""
    try:
        outcomes = list(worker(paths))
    except Exception as exc:  # any failure of one file must not stop a corpus-sized job
        if len(paths) == 1:
            known = isinstance(exc, WhisperTuneError)
            return [FileOutcome(error=str(exc) if known else f"{type(exc).__name__}: {exc}")]
        return [outcome for path in paths for outcome in outcomes_of(worker, [path])]
    if len(outcomes) != len(paths):
        raise RuntimeError(f"the worker returned {len(outcomes)} outcomes for {len(paths)} files")
    return outcomes


@dataclass
class JobSummary:
    """How a job went: files given, skipped as already done, done now, failed now."""

    total: int
    skipped: int
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # path -> error
    audio_seconds: float = 0.0

    def check(self, log: Path) -> None:
        """Raise one error naming the failed files (the rest are done and logged)."""
        if self.failed:
            named = "; ".join(
                error if error.startswith(path) else f"{path}: {error}"
                for path, error in list(self.failed.items())[:5]
            )
            more = f" (and {len(self.failed) - 5} more)" if len(self.failed) > 5 else ""
            raise WhisperTuneError(
                f"{len(self.failed)} of {self.total} files failed, recorded in {log}: "
                f"{named}{more}; a rerun tries them again and skips the rest"
            )


class JobSink:
    """Writes each outcome as it arrives: output files first, then the synced log line,
    so a file the log calls done has its outputs. A file delivered twice is kept once."""

    def __init__(self, log: JobLog, todo: Sequence[FileKey], skipped: int, output_dir, desc):
        self.log = log
        self.todo = list(todo)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.summary = JobSummary(total=len(todo) + skipped, skipped=skipped)
        self.bar = tqdm(total=len(todo), unit="file", desc=desc, disable=None)
        self._answered: set[FileKey] = set()

    def add(self, key: FileKey, outcome: FileOutcome, worker: str | None = None) -> None:
        if key in self._answered:
            return
        self._answered.add(key)
        error = outcome.error
        if error is None and outcome.result is None:
            error = "the worker returned neither a result nor an error"
        if error is None and self.output_dir is not None:
            try:
                for name, text in outcome.outputs.items():
                    atomic_write_text(self.output_dir / name, text)
            except OSError as exc:
                error = f"cannot write its output to {self.output_dir}: {exc.strerror or exc}"
        ok = error is None
        self.log.record(Entry(key, ok, outcome.result if ok else None, error, worker))
        if ok:
            self.summary.done += 1
            self.summary.audio_seconds += outcome.audio_seconds
        else:
            self.summary.failed[key.audio_path] = error
        self._progress()

    def finish(self, why_missing: str) -> JobSummary:
        """Record every file that got no outcome as failed (``why_missing``); the summary."""
        for key in self.todo:
            if key not in self._answered:
                self.add(key, FileOutcome(error=why_missing))
        self.bar.close()
        return self.summary

    def _progress(self) -> None:
        self.bar.update(1)
        elapsed = self.bar.format_dict["elapsed"] or 1e-9
        hours_per_s = self.summary.audio_seconds / 3600 / elapsed
        self.bar.set_postfix(audio_h_per_s=f"{hours_per_s:.3g}", failed=len(self.summary.failed))


@contextlib.contextmanager
def open_job(
    files: Sequence[str | Path], log_path: str | Path, output_dir: str | Path | None, desc: str
) -> Iterator[JobSink]:
    """The sink of a job over ``files`` logged at ``log_path``: ``sink.todo`` holds the files
    not yet done OK (the others are skipped)."""
    with JobLog(log_path) as log:
        todo, skipped = log.todo(files)
        yield JobSink(log, todo, skipped, output_dir, desc)


def run_local(
    files: Sequence[str | Path],
    worker_factory: WorkerFactory,
    log_path: str | Path,
    *,
    files_per_batch: int,
    output_dir: str | Path | None = None,
    desc: str = "files",
) -> JobSummary:
    """The job in this process: one worker, ``files_per_batch`` files at a time."""
    with open_job(files, log_path, output_dir, desc) as sink:
        if sink.todo:
            worker, me = worker_factory(), worker_id()
            for start in range(0, len(sink.todo), files_per_batch):
                batch = sink.todo[start : start + files_per_batch]
                outcomes = outcomes_of(worker, [key.audio_path for key in batch])
                for key, outcome in zip(batch, outcomes, strict=True):
                    sink.add(key, outcome, me)
        return sink.finish("no outcome came back")
