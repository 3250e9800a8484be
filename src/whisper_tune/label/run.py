"""Label an archive of files and folders locally into one manifest, written atomically."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from whisper_tune.data.manifest import Utterance, write_manifest
from whisper_tune.engine_settings import EngineSettings
from whisper_tune.errors import AudioError, WhisperTuneError
from whisper_tune.fsutil import check_writable_dir
from whisper_tune.inference.files import collect_audio_files
from whisper_tune.inference.types import TranscribeOptions
from whisper_tune.label.filters import LabelFilters
from whisper_tune.label.labeller import FileLabels, Labeller

log = logging.getLogger("whisper_tune.label")


@dataclass
class LabelSummary:
    """What a labelling run kept, what it dropped and why, and which files it could not read."""

    output: Path
    filters: LabelFilters
    files: int = 0
    audio_seconds: float = 0.0
    kept: int = 0
    kept_seconds: float = 0.0
    dropped: Counter[str] = field(default_factory=Counter)  # by the filter that dropped them
    records: int = 0
    failed: list[str] = field(default_factory=list)  # files that could not be read

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
        lines = [
            f"labelled {self.files} files ({_hours(self.audio_seconds)} of audio): "
            f"{self.kept} segments kept ({_hours(self.kept_seconds)}), "
            f"{sum(self.dropped.values())} dropped"
        ]
        lines += [
            f"  {count} {self.filters.reason(reason)}"
            for reason, count in self.dropped.most_common()
        ]
        lines.append(f"wrote {self.output}: {self.records} records (windows of up to 30 s)")
        return "\n".join(lines)


def label_files(
    audio_paths: Sequence[str | Path],
    engine: EngineSettings,
    options: TranscribeOptions,
    filters: LabelFilters,
    output: str | Path,
) -> LabelSummary:
    """Label every file (folders: the audio files directly inside) with the teacher
    ``engine`` loads and write the kept segments' records to the JSONL manifest ``output``
    (atomically, audio paths relative to its folder where they lie inside it).

    A file that cannot be read is logged, listed in ``LabelSummary.failed`` and skipped; the
    others are still written. Raises :class:`WhisperTuneError` before any decoding when the
    audio, the model or the output path is unusable.
    """
    files = collect_audio_files(audio_paths)
    output = Path(output)
    if output.is_dir():
        raise WhisperTuneError(f"--output {output} is a folder: give a .jsonl file path")
    check_writable_dir(output, "manifest")
    labeller = Labeller(engine, options, filters)
    summary = LabelSummary(output, filters)
    records: list[Utterance] = []
    for path in tqdm(files, unit="file", desc="labelling", disable=None):
        try:
            labels = labeller(path)
        except AudioError as exc:
            log.error("skipped %s", exc)
            summary.failed.append(str(path))
            continue
        summary.add(labels)
        records += labels.records
    summary.records = write_manifest(output, records)
    return summary


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.3f} h"
