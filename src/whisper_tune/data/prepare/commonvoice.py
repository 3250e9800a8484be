"""Mozilla Common Voice → JSONL: a release's ``train.tsv``/``dev.tsv``/``test.tsv`` and ``clips/``.

Durations come from the release's ``clip_durations.tsv`` when it is there (so a million mp3
clips need not be decoded), else from the audio.
"""

from __future__ import annotations

import csv
from pathlib import Path

from whisper_tune.data.manifest import Utterance, write_manifest
from whisper_tune.data.prepare.common import PrepareReport, with_durations
from whisper_tune.errors import WhisperTuneError
from whisper_tune.languages import language_code


def prepare_commonvoice(
    tsv: str | Path | list[str | Path],
    clips_dir: str | Path | None = None,
    annotation_dir: str | Path = "dataset",
    language: str | None = None,
    overwrite: bool = False,
) -> PrepareReport:
    """Write ``<annotation_dir>/<tsv name>.jsonl`` for each TSV (``train.tsv`` → ``train.jsonl``).

    The language is ``language`` if given, else the ``locale`` column's Whisper code
    (``zh-CN`` → ``zh``) where Whisper knows it.
    """
    report = PrepareReport()
    forced = language_code(language)
    for tsv_path in map(Path, tsv if isinstance(tsv, list) else [tsv]):
        if not tsv_path.is_file():
            raise WhisperTuneError(f"{tsv_path}: file not found")
        output = Path(annotation_dir) / f"{tsv_path.stem}.jsonl"
        if output.exists() and not overwrite:
            report.skipped.append(str(output))
            continue
        clips = Path(clips_dir) if clips_dir is not None else tsv_path.parent / "clips"
        durations = _clip_durations(tsv_path.parent / "clip_durations.tsv")
        utterances = []
        for number, row in _rows(tsv_path):
            where = f"{tsv_path}:{number}"
            name, sentence = row.get("path"), row.get("sentence")
            if not name or sentence is None:
                raise WhisperTuneError(f"{where}: needs the columns 'path' and 'sentence'")
            utterances.append(
                Utterance(
                    audio_path=str(clips / name),
                    sentence=sentence.strip(),
                    duration=durations.get(name),
                    language=forced or _locale_code(row.get("locale")),
                    source=where,
                )
            )
        kept = with_durations(utterances, report, f"{tsv_path.stem} durations")
        report.outputs[str(output)] = write_manifest(output, kept)
    return report


def _rows(path: Path):
    with path.open(encoding="utf-8", newline="") as handle:
        yield from enumerate(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), 2)


def _clip_durations(path: Path) -> dict[str, float]:
    """``clip_durations.tsv``: ``clip`` and ``duration[ms]`` columns."""
    if not path.is_file():
        return {}
    durations = {}
    for number, row in _rows(path):
        try:
            durations[row["clip"]] = int(row["duration[ms]"]) / 1000
        except (KeyError, TypeError, ValueError):
            raise WhisperTuneError(f"{path}:{number}: expected 'clip' and 'duration[ms]'") from None
    return durations


def _locale_code(locale: str | None) -> str | None:
    if not locale:
        return None
    try:
        return language_code(locale.split("-")[0])
    except WhisperTuneError:
        return None
