"""``prepare from-datasets``: a Hugging Face datasets source → JSONL manifest + audio files.

For people who want files: each row's audio that is a local file is referenced where it is;
audio held in the dataset (bytes: Parquet, Arrow, the Hub) is decoded and written as 16 kHz
wav into ``audio_dir``. Rows that fail validation are left out and listed, as other preparers do.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from whisper_tune.audio import SAMPLE_RATE, load_audio, write_wav
from whisper_tune.data.hf_datasets import DatasetOptions, iter_rows
from whisper_tune.data.manifest import write_manifest
from whisper_tune.data.prepare.common import PrepareReport
from whisper_tune.errors import ManifestError, WhisperTuneError


def prepare_from_datasets(
    spec: str,
    output: str | Path,
    options: DatasetOptions,
    audio_dir: str | Path | None = None,
    overwrite: bool = False,
) -> PrepareReport:
    """Write the manifest ``output`` from the rows of ``spec``; audio bytes go to
    ``audio_dir`` (default: ``<output's stem>_audio`` beside it)."""
    target = Path(output)
    report = PrepareReport()
    if target.exists() and not overwrite:
        report.skipped.append(str(target))
        return report
    folder = Path(audio_dir) if audio_dir else target.with_name(f"{target.stem}_audio")
    utterances = []
    for number, item in enumerate(tqdm(iter_rows(spec, "train", options), unit="row")):
        if isinstance(item, ManifestError):
            report.problems.append(str(item))
            continue
        utterance, encoded = item.utterance, item.audio
        try:
            audio = load_audio(encoded)
        except WhisperTuneError as exc:
            report.problems.append(f"{utterance.source}: {exc}")
            continue
        path = encoded
        if isinstance(encoded, bytes):
            folder.mkdir(parents=True, exist_ok=True)
            path = str(folder / f"{number:08d}.wav")
            write_wav(path, audio)
        seconds = round(len(audio) / SAMPLE_RATE, 3)
        utterances.append(replace(utterance, audio_path=path, duration=seconds))
    report.outputs[str(target)] = write_manifest(target, utterances)
    return report
