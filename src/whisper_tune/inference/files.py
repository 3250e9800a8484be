"""Transcribe audio files and folders to stdout or output files (the ``transcribe`` command)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from whisper_tune.audio import SAMPLE_RATE, load_audio
from whisper_tune.engine_settings import EngineSettings
from whisper_tune.errors import AudioError, WhisperTuneError
from whisper_tune.inference.loader import load_transcriber
from whisper_tune.inference.subtitles import SubtitleOptions
from whisper_tune.inference.types import Segment, TranscribeOptions, Transcriber
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
) -> list[Path]:
    """Transcribe every file (folders expanded) and write or print the results.

    One file without ``output_dir`` prints its result (the seed's JSON shape by default);
    several files print one JSON object per line, each with its ``audio_path``. A file that
    cannot be decoded is reported and skipped; the run then ends with an error naming it.
    Returns the paths written.
    """
    files = collect_audio_files(audio_paths)
    _check_output(output, len(files))
    transcriber = load_transcriber(engine)
    writer = (
        get_writer(output.output_format, output.output_dir, output.subtitles)
        if output.output_dir
        else None
    )
    stdout = output.stdout or sys.stdout
    written: list[Path] = []
    failed: list[str] = []
    for path in tqdm(files, unit="file", disable=len(files) == 1 or None):
        try:
            transcript = transcribe_file(transcriber, path, options)
        except AudioError as exc:
            if len(files) == 1:
                raise
            log.error("skipped %s", exc)
            failed.append(str(path))
            continue
        if writer is not None:
            written.extend(writer(transcript, path))
        elif len(files) == 1:
            stdout.write(
                make_writer(output.output_format, subtitles=output.subtitles).format(transcript)
            )
        else:
            line = {"audio_path": str(path), **seed_json(transcript)}
            stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    if failed:
        raise AudioError(
            f"{len(failed)} of {len(files)} files could not be read: {', '.join(failed)}"
        )
    return written


def transcribe_file(
    transcriber: Transcriber, path: str | Path, options: TranscribeOptions
) -> Transcript:
    """Decode one file, showing progress in seconds of audio as segments arrive."""
    audio = load_audio(path)
    segments, info = transcriber.transcribe(audio, options)
    duration = len(audio) / SAMPLE_RATE
    collected = tuple(_with_progress(segments, duration, Path(path).name))
    return Transcript(
        collected,
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
