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
from whisper_tune.errors import AudioError, WhisperTuneError
from whisper_tune.inference.batching import is_short, transcribe_short
from whisper_tune.inference.loader import load_transcriber
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
    seed_json,
)

log = logging.getLogger("whisper_tune.inference")

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".mp3", ".flac", ".m4a", ".ogg", ".opus", ".aac", ".wma", ".webm", ".mp4", ".mkv"}
    | {".mov", ".amr", ".aiff", ".aif"}
)


@dataclass
class OutputSettings:
    """Where results go: stdout (``output_dir`` None) or files in ``output_dir``."""

    output_dir: str | None = None
    output_format: str = "json"
    subtitles: SubtitleOptions = SubtitleOptions()  # how SRT/VTT cues are cut
    stdout: TextIO | None = field(default=None, repr=False)  # None: sys.stdout at run time


def collect_audio_files(paths: Iterable[str | Path]) -> list[Path]:
    """The given files, and the audio files (by extension) directly inside given folders."""
    files: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise AudioError(f"{path}: no audio files in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise AudioError(f"{path}: audio file not found")
    if not files:
        raise AudioError("no audio given")
    return files


def transcribe_files(
    audio_paths: Sequence[str | Path],
    engine: EngineSettings,
    options: TranscribeOptions,
    output: OutputSettings,
    file_batch: int = FILE_BATCH_SIZE,
) -> list[Path]:
    """Transcribe every file (folders expanded) and write or print the results, in order.

    Files of at most 30 s are decoded ``file_batch`` at a time in one batch where the engine
    batches (see :mod:`whisper_tune.inference.batching`); longer files one by one. Timestamps
    are decoded only when the output shows them (not for ``txt``). One file without
    ``output_dir`` prints its result (the seed's JSON shape by default); several files print
    one JSON object per line, each with its ``audio_path``. A file that cannot be decoded is
    reported and skipped; the run then ends with an error naming it. Returns the paths written.
    """
    files = collect_audio_files(audio_paths)
    _check_output(output, len(files))
    transcriber = load_transcriber(engine)
    if output.output_format == "txt":
        options = dataclasses.replace(options, timestamps=False)
    writer = (
        get_writer(output.output_format, output.output_dir, output.subtitles)
        if output.output_dir
        else None
    )
    stdout = output.stdout or sys.stdout
    written: list[Path] = []
    failed: list[str] = []
    bar = tqdm(total=len(files), unit="file", disable=len(files) == 1 or None)
    for path, transcript in _transcripts(transcriber, files, options, file_batch, failed, bar):
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
    if failed:
        raise AudioError(
            f"{len(failed)} of {len(files)} files could not be read: {', '.join(failed)}"
        )
    return written


def _transcripts(
    transcriber: Transcriber,
    files: Sequence[Path],
    options: TranscribeOptions,
    file_batch: int,
    failed: list[str],
    bar: tqdm,
) -> Iterator[tuple[Path, Transcript]]:
    """Each readable file's transcript, in order: short files gathered ``file_batch`` at a
    time and decoded together, a long file decoded alone as its turn comes. An unreadable
    file is logged and added to ``failed`` (with one file, its error is raised)."""
    pending: list[tuple[Path, np.ndarray]] = []

    def flush() -> Iterator[tuple[Path, Transcript]]:
        decoded = transcribe_short(transcriber, [audio for _, audio in pending], options)
        for (path, _), (segments, info) in zip(pending, decoded, strict=True):
            bar.update(1)
            yield path, _transcript(segments, info)
        pending.clear()

    for path in files:
        try:
            audio = load_audio(path)
        except AudioError as exc:
            if len(files) == 1:
                raise
            log.error("skipped %s", exc)
            failed.append(str(path))
            bar.update(1)
            continue
        if is_short(audio):
            pending.append((path, audio))
            if len(pending) >= file_batch:
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
