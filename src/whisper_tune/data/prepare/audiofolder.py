"""Hugging Face "audiofolder" layout → JSONL.

A folder with ``metadata.csv`` (or ``metadata.jsonl``) whose ``file_name`` column names the
audio relative to the metadata file and whose ``transcription``/``sentence``/``text`` column
holds the text. Splits come from top-level folders (``train/``, ``test/``, ``validation/``),
either with their own metadata file or named in ``file_name``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from whisper_tune.data.manifest import Utterance, write_manifest
from whisper_tune.data.prepare.common import PrepareReport, with_durations
from whisper_tune.errors import WhisperTuneError
from whisper_tune.languages import language_code

TEXT_COLUMNS = ("transcription", "sentence", "text")
SPLIT_NAMES = ("train", "test", "validation", "valid", "dev")


def prepare_audiofolder(
    folder: str | Path,
    annotation_dir: str | Path = "dataset",
    text_column: str | None = None,
    language: str | None = None,
    overwrite: bool = False,
) -> PrepareReport:
    """Write ``<annotation_dir>/<split>.jsonl`` for each split found under ``folder``."""
    root = Path(folder)
    files = sorted(root.glob("metadata.csv")) + sorted(root.glob("metadata.jsonl"))
    files += sorted(root.glob("*/metadata.csv")) + sorted(root.glob("*/metadata.jsonl"))
    if not files:
        raise WhisperTuneError(f"{root}: no metadata.csv or metadata.jsonl found")
    default_language = language_code(language)
    splits: dict[str, list[Utterance]] = {}
    for metadata in files:
        for number, row in _rows(metadata):
            where = f"{metadata}:{number}"
            audio = metadata.parent / _field(row, "file_name", where)
            text = _field(row, text_column or _text_column(row, metadata), where)
            row_language = row.get("language") or default_language
            try:
                row_language = language_code(row_language)
            except WhisperTuneError as exc:
                raise WhisperTuneError(f"{where}: {exc}") from None
            top = audio.relative_to(root).parts[0]
            split = top if top in SPLIT_NAMES else "train"
            splits.setdefault(split, []).append(
                Utterance(str(audio), text.strip(), language=row_language, source=where)
            )
    report = PrepareReport()
    for split, utterances in splits.items():
        output = Path(annotation_dir) / f"{split}.jsonl"
        if output.exists() and not overwrite:
            report.skipped.append(str(output))
            continue
        kept = with_durations(utterances, report, f"{split} durations")
        report.outputs[str(output)] = write_manifest(output, kept)
    return report


def _rows(metadata: Path):
    with metadata.open(encoding="utf-8", newline="") as handle:
        if metadata.suffix == ".csv":
            for number, row in enumerate(csv.DictReader(handle), 2):
                yield number, row
            return
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise WhisperTuneError(
                        f"{metadata}:{number}: not valid JSON ({exc.msg})"
                    ) from None


def _text_column(row: dict, metadata: Path) -> str:
    for name in TEXT_COLUMNS:
        if name in row:
            return name
    raise WhisperTuneError(
        f"{metadata}: no text column ({', '.join(TEXT_COLUMNS)}); columns are "
        f"{', '.join(map(str, row))}; name yours with --text_column"
    )


def _field(row: dict, name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        raise WhisperTuneError(f"{where}: missing column {name!r}")
    return value
