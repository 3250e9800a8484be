"""LJSpeech layout → JSONL: ``metadata.csv`` lines ``id|text|normalized text`` and ``wavs/``."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from whisper_tune.data.manifest import Utterance, write_manifest
from whisper_tune.data.prepare.common import PrepareReport, with_durations
from whisper_tune.errors import WhisperTuneError
from whisper_tune.languages import language_code


def prepare_ljspeech(
    folder: str | Path,
    annotation_dir: str | Path = "dataset",
    test_ratio: float = 0.1,
    seed: int = 0,
    normalized_text: bool = False,
    language: str | None = "en",
    overwrite: bool = False,
) -> PrepareReport:
    """Write ``train.jsonl`` and, when ``test_ratio`` > 0, a seeded random ``test.jsonl``.

    The second column (text as spoken, with digits and punctuation, as Whisper writes it) is
    used unless ``normalized_text`` picks the third.
    """
    root = Path(folder)
    metadata = root / "metadata.csv"
    if not metadata.is_file():
        raise WhisperTuneError(f"{metadata}: file not found; is {root} an LJSpeech folder?")
    if not 0.0 <= test_ratio < 1.0:
        raise WhisperTuneError(f"test_ratio must be within [0, 1), got {test_ratio}")
    code = language_code(language)
    utterances = []
    with metadata.open(encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter="|", quoting=csv.QUOTE_NONE)
        for number, row in enumerate(rows, 1):
            if not row:
                continue
            if len(row) < 2:
                raise WhisperTuneError(f"{metadata}:{number}: expected 'id|text|normalized text'")
            text = row[2] if normalized_text and len(row) > 2 else row[1]
            wav = root / "wavs" / f"{row[0]}.wav"
            utterances.append(
                Utterance(str(wav), text.strip(), language=code, source=f"{metadata}:{number}")
            )
    chosen = set(
        random.Random(seed).sample(range(len(utterances)), round(len(utterances) * test_ratio))
    )
    test = [u for i, u in enumerate(utterances) if i in chosen]
    train = [u for i, u in enumerate(utterances) if i not in chosen]
    report = PrepareReport()
    for split, part in (("train", train), ("test", test)):
        output = Path(annotation_dir) / f"{split}.jsonl"
        if not part:
            continue
        if output.exists() and not overwrite:
            report.skipped.append(str(output))
            continue
        report.outputs[str(output)] = write_manifest(output, with_durations(part, report, split))
    return report
