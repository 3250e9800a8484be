"""AIShell-1 (openslr 33): the user's ``data_aishell.tgz`` → train/dev/test JSONL.

The archive holds ``data_aishell/transcript/aishell_transcript_v0.8.txt`` (``ID 词 词 ...``)
and ``data_aishell/wav/S0002.tar.gz`` ..., one archive per speaker, each holding
``{train,dev,test}/S0002/BAC009S0002W0122.wav``. The user's archive is only ever read.
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from whisper_tune.data.manifest import Utterance, write_manifest
from whisper_tune.data.prepare.archive import extract_tar
from whisper_tune.data.prepare.common import (
    PrepareReport,
    read_id_text,
    with_durations,
    with_single_span,
)
from whisper_tune.data.prepare.download import download
from whisper_tune.errors import WhisperTuneError

AISHELL_URL = "https://openslr.elda.org/resources/33/data_aishell.tgz"
AISHELL_MD5 = "2f494334227864a8a8fec932999db9d8"
SPLITS = ("train", "dev", "test")
_EXTRACTED = ".whisper-tune-extracted"


def prepare_aishell(
    filepath: str | Path | None = None,
    target_dir: str | Path = "dataset/audio",
    annotation_text: str | Path = "dataset",
    punctuated_text: str | Path | None = None,
    timestamps: bool = False,
    overwrite: bool = False,
    url: str = AISHELL_URL,
    md5: str | None = AISHELL_MD5,
) -> PrepareReport:
    """Extract AIShell-1 under ``target_dir`` and write ``{train,dev,test}.jsonl``.

    ``filepath`` is the local archive; without it an existing ``target_dir/data_aishell`` is
    used, else the archive is downloaded (resumable, md5-checked) into ``target_dir``.
    ``punctuated_text`` is an optional ``ID text`` file whose sentences replace the
    unpunctuated transcripts; ``timestamps`` adds the seed's one-span ``sentences`` field.
    Finished steps (extraction, existing manifests) are skipped on a re-run.
    """
    report = PrepareReport()
    data_dir = _extract_corpus(filepath, Path(target_dir), url, md5, report)
    _extract_speakers(data_dir / "wav", report)
    texts = read_id_text(data_dir / "transcript" / "aishell_transcript_v0.8.txt")
    if punctuated_text is not None:
        punctuated = read_id_text(Path(punctuated_text))
        texts.update({key: text for key, text in punctuated.items() if key in texts})
        report.notes.append(f"{len(punctuated)} punctuated transcripts from {punctuated_text}")
    for split in SPLITS:
        output = Path(annotation_text) / f"{split}.jsonl"
        if output.exists() and not overwrite:
            report.skipped.append(str(output))
            continue
        utterances = with_durations(
            _split_utterances(data_dir / "wav" / split, texts, report), report, f"{split} durations"
        )
        if timestamps:
            utterances = [with_single_span(u) for u in utterances]
        report.outputs[str(output)] = write_manifest(output, utterances)
    return report


def _extract_corpus(
    filepath: str | Path | None,
    target_dir: Path,
    url: str,
    md5: str | None,
    report: PrepareReport,
) -> Path:
    data_dir = target_dir / "data_aishell"
    if (data_dir / _EXTRACTED).exists() or (filepath is None and data_dir.is_dir()):
        report.notes.append(f"using the extracted corpus in {data_dir}")
        return data_dir
    archive = Path(filepath) if filepath is not None else download(url, target_dir, md5)
    extract_tar(archive, target_dir)
    if not (data_dir / "wav").is_dir():
        raise WhisperTuneError(f"{archive}: no data_aishell/wav folder inside; is it AIShell-1?")
    (data_dir / _EXTRACTED).touch()
    return data_dir


def _extract_speakers(wav_dir: Path, report: PrepareReport) -> None:
    """Unpack each per-speaker archive once (a marker file records it).

    Archives this tool unpacked from the user's ``data_aishell.tgz`` are removed once
    extracted (the user's archive still holds them), saving the corpus' size in disk space;
    archives in a folder the user extracted themselves are left alone.
    """
    ours = (wav_dir.parent / _EXTRACTED).exists()
    archives = sorted(wav_dir.glob("*.tar.gz"))
    pending = [a for a in archives if not _speaker_marker(a).exists()]
    for archive in tqdm(pending, desc="extract speakers", unit="archive", disable=not pending):
        extract_tar(archive, wav_dir, progress=False)
        _speaker_marker(archive).touch()
    if ours:
        for archive in archives:
            archive.unlink()
    if archives:
        report.notes.append(
            f"{len(pending)} speaker archives extracted, "
            f"{len(archives) - len(pending)} were already done"
        )


def _speaker_marker(archive: Path) -> Path:
    return archive.with_name(f".{archive.name}.extracted")


def _split_utterances(
    split_dir: Path, texts: dict[str, str], report: PrepareReport
) -> list[Utterance]:
    if not split_dir.is_dir():
        raise WhisperTuneError(f"{split_dir}: folder not found; is the AIShell archive complete?")
    utterances = []
    for wav in sorted(split_dir.rglob("*.wav")):
        text = texts.get(wav.stem)
        if text is None:
            report.problems.append(f"{wav}: no transcript for {wav.stem}")
            continue
        utterances.append(
            Utterance(audio_path=str(wav), sentence=text, language="zh", source=str(wav))
        )
    return utterances
