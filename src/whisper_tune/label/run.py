"""Label an archive of files and folders, here or on Ray, resumably, into one manifest.

Each file's :class:`~whisper_tune.label.labeller.FileLabels` (every segment's verdict) is
appended to a job log beside the manifest (``pseudo.jsonl`` → ``pseudo.job.jsonl``, see
:mod:`whisper_tune.inference.job_log`) as the file finishes; a rerun with the same settings
skips the files done. The manifest is then written atomically from the log, in file order.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whisper_tune.data.manifest import Utterance, write_manifest
from whisper_tune.engine_settings import FILE_BATCH_SIZE, EngineSettings
from whisper_tune.errors import WhisperTuneError
from whisper_tune.fsutil import check_writable_dir
from whisper_tune.inference.file_jobs import FileOutcome, FileWorker, JobSummary, run_local
from whisper_tune.inference.files import collect_audio_files
from whisper_tune.inference.job_log import FileKey, read_entries
from whisper_tune.inference.ray_runner import RaySettings, run_on_ray
from whisper_tune.inference.types import TranscribeOptions
from whisper_tune.label.filters import LabelFilters
from whisper_tune.label.labeller import FileLabels, Labeller


@dataclass(frozen=True)
class LabelJob:
    """A worker factory (see :mod:`whisper_tune.inference.file_jobs`): its worker loads the
    teacher once, then labels file after file; each file's result is its labels and the
    settings they were made with."""

    engine: EngineSettings
    options: TranscribeOptions
    filters: LabelFilters

    def settings(self) -> dict[str, Any]:
        """What decides a file's labels: a job log made with other settings is not resumed."""
        options = dataclasses.asdict(self.options)
        decoding = ("language", "beam_size", "vad_filter", "initial_prompt", "hotwords")
        return {
            "model_path": self.engine.model_path,
            "engine": self.engine.engine,
            **{name: options[name] for name in decoding},
            **dataclasses.asdict(self.filters),
        }

    def __call__(self) -> FileWorker:
        labeller = Labeller(self.engine, self.options, self.filters)
        settings = self.settings()

        def label(paths: Sequence[str]) -> list[FileOutcome]:
            outcomes = []
            for path in paths:
                labels = labeller(path)
                result = {"settings": settings, "labels": labels.to_json()}
                outcomes.append(FileOutcome(result=result, audio_seconds=labels.duration))
            return outcomes

        return label


@dataclass
class LabelSummary:
    """What a labelling run kept, what it dropped and why, and which files failed."""

    output: Path
    log: Path
    filters: LabelFilters
    job: JobSummary
    files: int = 0
    audio_seconds: float = 0.0
    kept: int = 0
    kept_seconds: float = 0.0
    dropped: Counter[str] = field(default_factory=Counter)  # by the filter that dropped them
    records: int = 0

    def add(self, labels: FileLabels) -> None:
        self.files += 1
        self.audio_seconds += labels.duration
        for verdict in labels.verdicts:
            if verdict.kept:
                self.kept += 1
                self.kept_seconds += verdict.end - verdict.start
            else:
                self.dropped[verdict.dropped_by] += 1

    def text(self) -> str:
        """The summary printed at the end of a run."""
        resumed = f", {self.job.skipped} done before" if self.job.skipped else ""
        lines = [
            f"labelled {self.files} files{resumed} ({_hours(self.audio_seconds)} of audio): "
            f"{self.kept} segments kept ({_hours(self.kept_seconds)}), "
            f"{sum(self.dropped.values())} dropped"
        ]
        lines += [
            f"  {count} {self.filters.reason(reason)}"
            for reason, count in self.dropped.most_common()
        ]
        lines.append(f"wrote {self.output}: {self.records} records (windows of up to 30 s)")
        lines.append(f"every segment's verdict: {self.log}")
        return "\n".join(lines)

    def check(self) -> None:
        """Raise one error naming the files that could not be labelled (see JobSummary)."""
        self.job.check(self.log)


def job_log_path(output: str | Path) -> Path:
    """The job log beside the manifest ``output``: ``pseudo.jsonl`` → ``pseudo.job.jsonl``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.job.jsonl")


def label_files(
    audio_paths: Sequence[str | Path],
    engine: EngineSettings,
    options: TranscribeOptions,
    filters: LabelFilters,
    output: str | Path,
    ray: RaySettings | None = None,
) -> LabelSummary:
    """Label every file (folders: the audio files directly inside; manifests: the files
    they name) with the teacher ``engine`` loads, in this process or on Ray (``ray``), and
    write the kept segments' records to the JSONL manifest ``output`` (audio paths relative
    to its folder where they lie inside it).

    A file that cannot be read is recorded as failed in the job log and skipped; the others
    are written (call :meth:`LabelSummary.check` to raise an error naming the failed ones).
    Raises :class:`WhisperTuneError` before any decoding when the audio, the model, the
    output path or a job log made with other settings is in the way.
    """
    files = [path.resolve() for path in collect_audio_files(audio_paths)]
    output = Path(output)
    if output.is_dir():
        raise WhisperTuneError(f"--output {output} is a folder: give a .jsonl file path")
    check_writable_dir(output, "manifest")
    log = job_log_path(output)
    job = LabelJob(engine, options, filters)
    _check_resumable(log, job.settings())
    if ray is None:
        worker = job()  # a model that will not load fails here, before the log is opened
        summary = run_local(
            files, lambda: worker, log, files_per_batch=FILE_BATCH_SIZE, desc="label"
        )
    else:
        summary = run_on_ray(
            files, job, log, settings=ray, files_per_batch=FILE_BATCH_SIZE, desc="label"
        )
    return _write(files, log, output, filters, summary)


def _check_resumable(log: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume a job log whose labels were made with other settings."""
    for entry in read_entries(log):
        if entry.ok and entry.result and entry.result.get("settings") != settings:
            before = entry.result.get("settings") or {}
            changed = sorted(
                k for k in settings.keys() | before.keys() if before.get(k) != settings.get(k)
            )
            raise WhisperTuneError(
                f"{log} holds labels made with other settings ({', '.join(changed)}): run "
                "with the same settings to resume it, or delete it to label again"
            )


def _write(
    files: Sequence[Path], log: Path, output: Path, filters: LabelFilters, job: JobSummary
) -> LabelSummary:
    """Write the manifest of ``files`` from the job log, in file order; the summary."""
    done = {entry.key: entry.result for entry in read_entries(log) if entry.ok}
    summary = LabelSummary(output, log, filters, job)
    records: list[Utterance] = []
    for path in files:
        result = done.get(FileKey.of(path))
        if result is None:  # failed: named by LabelSummary.check
            continue
        labels = FileLabels.from_json(result["labels"])
        summary.add(labels)
        records += labels.records
    summary.records = write_manifest(output, records)
    return summary


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.3f} h"
