"""A Kaldi data directory → JSONL: ``wav.scp`` + ``text``, and ``segments`` when present."""

from __future__ import annotations

from pathlib import Path

from whisper_tune.data.manifest import Utterance, write_manifest
from whisper_tune.data.prepare.common import PrepareReport, read_id_text, with_durations
from whisper_tune.errors import WhisperTuneError
from whisper_tune.languages import language_code


def prepare_kaldi(
    data_dir: str | Path,
    annotation_dir: str | Path = "dataset",
    audio_root: str | Path = ".",
    language: str | None = None,
    overwrite: bool = False,
) -> PrepareReport:
    """Write ``<annotation_dir>/<data_dir name>.jsonl`` (``data/train`` → ``train.jsonl``).

    Relative paths in ``wav.scp`` resolve against ``audio_root`` (Kaldi recipes use the
    recipe folder). Piped commands and ark offsets are refused: write such audio to files.
    """
    folder = Path(data_dir)
    output = Path(annotation_dir) / f"{folder.resolve().name}.jsonl"
    report = PrepareReport()
    if output.exists() and not overwrite:
        report.skipped.append(str(output))
        return report
    recordings = _read_wav_scp(folder / "wav.scp", Path(audio_root))
    texts = read_id_text(folder / "text")
    code = language_code(language)
    segments_file = folder / "segments"
    if segments_file.is_file():
        entries = list(_read_segments(segments_file, recordings))
    else:
        entries = [
            (utt, path, None, None, f"{folder / 'wav.scp'}:{utt}")
            for utt, path in recordings.items()
        ]
    utterances = []
    for utt, path, start, end, where in entries:
        if utt not in texts:
            report.problems.append(f"{where}: no line for {utt!r} in {folder / 'text'}")
            continue
        duration = None if start is None else round(end - start, 3)
        utterances.append(Utterance(path, texts[utt], start, end, duration, code, source=where))
    kept = with_durations(utterances, report, "durations")
    report.outputs[str(output)] = write_manifest(output, kept)
    return report


def _read_wav_scp(path: Path, audio_root: Path) -> dict[str, str]:
    if not path.is_file():
        raise WhisperTuneError(f"{path}: file not found; is this a Kaldi data directory?")
    recordings: dict[str, str] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            key, _, value = line.strip().partition(" ")
            if not key:
                continue
            value = value.strip()
            if not value or value.endswith("|") or ".ark:" in value:
                raise WhisperTuneError(
                    f"{path}:{number}: only plain audio file paths are supported, not {value!r}; "
                    "write piped or ark audio to files first"
                )
            audio = Path(value)
            recordings[key] = str(audio if audio.is_absolute() else audio_root / audio)
    return recordings


def _read_segments(path: Path, recordings: dict[str, str]):
    """Yield ``(utt, audio path, start, end, where)`` for each line of a Kaldi segments file."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}:{number}"
            try:
                utt, recording, start, end = (
                    fields[0],
                    fields[1],
                    float(fields[2]),
                    float(fields[3]),
                )
            except (IndexError, ValueError):
                raise WhisperTuneError(f"{where}: expected 'utt recording start end'") from None
            if end <= start or start < 0:
                raise WhisperTuneError(f"{where}: end {end} is not after start {start}")
            if recording not in recordings:
                raise WhisperTuneError(f"{where}: recording {recording!r} is not in wav.scp")
            yield utt, recordings[recording], start, end, where
