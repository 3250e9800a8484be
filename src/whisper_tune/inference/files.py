"""Transcribe audio files and folders to stdout or output files (the ``transcribe`` command)."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
from tqdm import tqdm

from whisper_tune.audio import SAMPLE_RATE, load_audio
from whisper_tune.engine_settings import FILE_BATCH_SIZE, EngineSettings
from whisper_tune.errors import AudioError, ManifestError, WhisperTuneError
from whisper_tune.inference.batching import group_full, is_short, transcribe_short
from whisper_tune.inference.file_jobs import FileOutcome, FileWorker, JobSummary
from whisper_tune.inference.loader import load_transcriber
from whisper_tune.inference.ray_runner import RaySettings, run_on_ray
from whisper_tune.inference.subtitles import SubtitleOptions
from whisper_tune.inference.types import (
    Segment,
    TranscribeOptions,
    Transcriber,
    TranscriptionInfo,
)
from whisper_tune.inference.writers import (
    WRITERS,
    Transcript,
    get_writer,
    make_writer,
    make_writers,
    seed_json,
)

log = logging.getLogger("whisper_tune.inference")

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".mp3", ".flac", ".m4a", ".ogg", ".opus", ".aac", ".wma", ".webm", ".mp4", ".mkv"}
    | {".mov", ".amr", ".aiff", ".aif"}
)
JOB_LOG = "transcripts.jsonl"  # transcribe --ray's resumable job log, in --output_dir


@dataclass
class OutputSettings:
    """Where results go: stdout (``output_dir`` None) or files in ``output_dir``."""

    output_dir: str | None = None
    output_format: str = "json"
    subtitles: SubtitleOptions = SubtitleOptions()  # how SRT/VTT cues are cut
    stdout: TextIO | None = field(default=None, repr=False)  # None: sys.stdout at run time


def collect_audio_files(paths: Iterable[str | Path]) -> list[Path]:
    """The given files, the audio files (by extension) directly inside given folders, and
    the ``audio_path`` of each line of given JSONL manifests."""
    files: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise AudioError(f"{path}: no audio files in this folder")
            files.extend(found)
        elif path.suffix.lower() == ".jsonl" and path.is_file():
            files.extend(manifest_audio_files(path))
        elif path.is_file():
            files.append(path)
        else:
            raise AudioError(f"{path}: audio file not found")
    if not files:
        raise AudioError("no audio given")
    return files


def manifest_audio_files(manifest: Path) -> list[Path]:
    """Each audio file a JSONL manifest names (``audio_path``, relative to the manifest's
    folder), once; a line without one, or naming a missing file, is an error naming it."""
    base_dir = manifest.resolve().parent
    files: list[Path] = []
    with manifest.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)["audio_path"]
            except (ValueError, KeyError, TypeError):
                value = None
            if not isinstance(value, str):
                raise ManifestError(f"{manifest}:{number}: no 'audio_path' string field")
            audio = base_dir / Path(value).expanduser()
            if not audio.is_file():
                raise AudioError(f"{manifest}:{number}: audio file not found: {audio}")
            files.append(audio)
    if not files:
        raise ManifestError(f"{manifest}: no lines")
    return list(dict.fromkeys(files))


def transcribe_files(
    audio_paths: Sequence[str | Path],
    engine: EngineSettings,
    options: TranscribeOptions,
    output: OutputSettings,
    file_batch: int = FILE_BATCH_SIZE,
    pack_clips: bool = False,
) -> list[Path]:
    """Transcribe every file (folders expanded) and write or print the results, in order.

    Files of at most 30 s are decoded ``file_batch`` at a time in one batch where the engine
    batches (see :mod:`whisper_tune.inference.batching`); longer files one by one. Timestamps
    are decoded only when the output shows them (not for ``txt``); ``pack_clips`` lays short
    files side by side in shared windows (:mod:`whisper_tune.inference.packing`). One file
    without ``output_dir`` prints its result (the seed's JSON shape by default); several
    files print one JSON object per line, each with its ``audio_path``. A file that cannot be
    decoded is reported and skipped; the run then ends with an error naming it. Returns the
    paths written.
    """
    files = collect_audio_files(audio_paths)
    _check_output(output, len(files))
    transcriber = load_transcriber(engine)
    options = _shown(options, output.output_format)
    writer = (
        get_writer(output.output_format, output.output_dir, output.subtitles)
        if output.output_dir
        else None
    )
    stdout = output.stdout or sys.stdout
    written: list[Path] = []
    failed: dict[str, str] = {}
    bar = tqdm(total=len(files), unit="file", disable=len(files) == 1 or None)
    for path, transcript in _transcripts(
        transcriber, files, options, file_batch, failed, bar, pack_clips
    ):
        if writer is not None:
            written.extend(writer(transcript, path))
        elif len(files) == 1:
            stdout.write(
                make_writer(output.output_format, subtitles=output.subtitles).format(transcript)
            )
        else:
            line = {"audio_path": str(path), **seed_json(transcript)}
            stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    bar.close()
    if len(files) == 1 and failed:
        raise AudioError(*failed.values())
    if failed:
        raise AudioError(
            f"{len(failed)} of {len(files)} files could not be read: {', '.join(failed)}"
        )
    return written


def transcribe_on_ray(
    audio_paths: Sequence[str | Path],
    engine: EngineSettings,
    options: TranscribeOptions,
    output: OutputSettings,
    ray: RaySettings,
    file_batch: int = FILE_BATCH_SIZE,
) -> JobSummary:
    """:func:`transcribe_files` spread over a Ray cluster, resumable: each actor loads the
    model once and decodes ``file_batch`` files at a time; each file's outputs and its line
    in ``<output_dir>/transcripts.jsonl`` are written as it finishes, and a rerun skips the
    files that line says are done. Ends with an error naming the files that failed."""
    if output.output_dir is None:
        raise WhisperTuneError(
            f"--ray writes files: give --output_dir (one output per file and {JOB_LOG} go there)"
        )
    files = collect_audio_files(audio_paths)
    _check_output(output, len(files))
    job = TranscribeJob(engine, _shown(options, output.output_format), output, file_batch)
    log = Path(output.output_dir) / JOB_LOG
    summary = run_on_ray(
        files,
        job,
        log,
        settings=ray,
        files_per_batch=file_batch,
        output_dir=output.output_dir,
        desc="transcribe",
    )
    summary.check(log)
    return summary


@dataclass(frozen=True)
class TranscribeJob:
    """A worker factory (see :mod:`whisper_tune.inference.file_jobs`): its worker loads the
    model once, then transcribes batches of files as :func:`transcribe_files` does; each
    file's result is the seed's JSON record, its outputs the files ``output`` asks for."""

    engine: EngineSettings
    options: TranscribeOptions
    output: OutputSettings
    file_batch: int = FILE_BATCH_SIZE

    def __call__(self) -> FileWorker:
        transcriber = load_transcriber(self.engine)
        writers = make_writers(self.output.output_format, subtitles=self.output.subtitles)

        def transcribe(paths: Sequence[str]) -> list[FileOutcome]:
            failed: dict[str, str] = {}
            done: dict[str, FileOutcome] = {}
            files = [Path(path) for path in paths]
            bar = tqdm(disable=True)
            for path, transcript in _transcripts(
                transcriber, files, self.options, self.file_batch, failed, bar
            ):
                done[str(path)] = FileOutcome(
                    result=seed_json(transcript),
                    audio_seconds=transcript.duration,
                    outputs={w.file_name(path): w.format(transcript) for w in writers},
                )
            return [done.get(path) or FileOutcome(error=failed[path]) for path in paths]

        return transcribe


def _shown(options: TranscribeOptions, output_format: str) -> TranscribeOptions:
    """``options`` as the output needs them: txt shows no times, so none are decoded."""
    if output_format == "txt":
        return dataclasses.replace(options, timestamps=False)
    return options


def _transcripts(
    transcriber: Transcriber,
    files: Sequence[Path],
    options: TranscribeOptions,
    file_batch: int,
    failed: dict[str, str],
    bar: tqdm,
    pack: bool = False,
) -> Iterator[tuple[Path, Transcript]]:
    """Each readable file's transcript, in order: short files gathered ``file_batch`` at a
    time (with ``pack``, enough of them to fill ``file_batch`` windows; see
    :func:`~whisper_tune.inference.batching.group_full`) and decoded together, a long file
    decoded alone as its turn comes. An unreadable file is logged and its error put in
    ``failed`` under its path."""
    pending: list[tuple[Path, np.ndarray]] = []

    def flush() -> Iterator[tuple[Path, Transcript]]:
        audios = [audio for _, audio in pending]
        decoded = transcribe_short(transcriber, audios, options, pack)
        for (path, _), (segments, info) in zip(pending, decoded, strict=True):
            bar.update(1)
            yield path, _transcript(segments, info)
        pending.clear()

    for path in files:
        try:
            audio = load_audio(path)
        except AudioError as exc:
            if len(files) > 1:
                log.error("skipped %s", exc)
            failed[str(path)] = str(exc)
            bar.update(1)
            continue
        if is_short(audio):
            pending.append((path, audio))
            seconds = sum(len(a) for _, a in pending) / SAMPLE_RATE
            if group_full(len(pending), seconds, file_batch, pack):
                yield from flush()
            continue
        yield from flush()
        yield path, transcribe_file(transcriber, path, options, audio)
        bar.update(1)
    yield from flush()


def transcribe_file(
    transcriber: Transcriber,
    path: str | Path,
    options: TranscribeOptions,
    audio: np.ndarray | None = None,
) -> Transcript:
    """Decode one file (``audio``: its samples, when already read), showing progress in
    seconds of audio as segments arrive."""
    if audio is None:
        audio = load_audio(path)
    segments, info = transcriber.transcribe(audio, options)
    duration = len(audio) / SAMPLE_RATE
    return _transcript(_with_progress(segments, duration, Path(path).name), info)


def _transcript(segments: Iterable[Segment], info: TranscriptionInfo) -> Transcript:
    return Transcript(
        tuple(segments),
        info.language,
        info.duration,
        info.language_probability,
        info.transcription_options,
    )


def _with_progress(segments: Iterator[Segment], duration: float, name: str) -> Iterator[Segment]:
    with tqdm(total=round(duration, 1), unit="s", desc=name, leave=False, disable=None) as bar:
        for segment in segments:
            bar.update(max(0.0, round(min(segment.end, duration) - bar.n, 1)))
            yield segment
        bar.update(bar.total - bar.n)


def _check_output(output: OutputSettings, n_files: int) -> None:
    if output.output_format not in (*WRITERS, "all"):
        get_writer(output.output_format, ".")  # raises the unknown-format error
    if output.output_dir is None and output.output_format == "all":
        raise WhisperTuneError("--output_format all writes several files: give --output_dir")
    if output.output_dir is None and n_files > 1 and output.output_format != "json":
        raise WhisperTuneError(
            f"several audio files with --output_format {output.output_format}: give --output_dir "
            "(without it, several files are printed as JSON lines)"
        )
