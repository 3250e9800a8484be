"""Transcript writers in openai/whisper's style: one base, subtitles sharing a second one.

Formats: ``json`` (the seed project's shape: ``language``, ``duration``,
``results[{start, end, text}]``, ``text``), ``verbose_json`` (segments with scores and
words), ``txt``, ``srt``, ``vtt`` and ``tsv``. Every file is written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from whisper_tune.errors import WhisperTuneError
from whisper_tune.fsutil import atomic_write_text
from whisper_tune.inference.policy import DecodingPolicy
from whisper_tune.inference.postprocess import join_text
from whisper_tune.inference.subtitles import SubtitleOptions, cut_cues
from whisper_tune.inference.types import Segment


@dataclass(frozen=True)
class Transcript:
    """Everything a writer needs about one transcribed file."""

    segments: tuple[Segment, ...]
    language: str
    duration: float
    language_probability: float = 1.0
    options: DecodingPolicy | None = None  # the decoding policy used, written in JSON

    @property
    def text(self) -> str:
        return join_text(self.segments, self.language)


def seed_json(transcript: Transcript) -> dict:
    """The seed's ``infer_ct2.py`` output: times rounded to 10 ms."""
    return {
        "language": transcript.language,
        "duration": round(transcript.duration, 2),
        "results": [
            {"start": round(s.start, 2), "end": round(s.end, 2), "text": s.text}
            for s in transcript.segments
        ],
        "text": transcript.text,
        **_options(transcript),
    }


def _options(transcript: Transcript) -> dict:
    """``transcription_options``: how the transcript was decoded (when known)."""
    if transcript.options is None:
        return {}
    return {"transcription_options": transcript.options.as_dict()}


class ResultWriter:
    """Formats a transcript as text; writes it beside nothing but its own output file."""

    extension: str

    def __init__(self, output_dir: str | Path = ".") -> None:
        self.output_dir = Path(output_dir)

    def __call__(self, transcript: Transcript, audio_path: str | Path) -> Path:
        """Write ``<output_dir>/<audio stem>.<extension>`` and return its path."""
        return self.write(transcript, self.output_dir / self.file_name(audio_path))

    def file_name(self, audio_path: str | Path) -> str:
        """``<audio stem>.<extension>``: the name of ``audio_path``'s output."""
        return f"{Path(audio_path).stem}.{self.extension}"

    def write(self, transcript: Transcript, path: str | Path) -> Path:
        atomic_write_text(path, self.format(transcript))
        return Path(path)

    def format(self, transcript: Transcript) -> str:
        raise NotImplementedError


class WriteTXT(ResultWriter):
    extension = "txt"

    def format(self, transcript: Transcript) -> str:
        return "".join(f"{segment.text}\n" for segment in transcript.segments)


class SubtitlesWriter(ResultWriter):
    """Cues with ``start --> end`` times; SRT and VTT differ only in the time format."""

    always_include_hours: bool
    decimal_marker: str

    def __init__(
        self, output_dir: str | Path = ".", options: SubtitleOptions = SubtitleOptions()
    ) -> None:
        super().__init__(output_dir)
        self.options = options

    def format_timestamp(self, seconds: float) -> str:
        milliseconds = max(0, round(seconds * 1000))
        hours, milliseconds = divmod(milliseconds, 3_600_000)
        minutes, milliseconds = divmod(milliseconds, 60_000)
        secs, milliseconds = divmod(milliseconds, 1000)
        hours_text = f"{hours:02d}:" if self.always_include_hours or hours else ""
        return f"{hours_text}{minutes:02d}:{secs:02d}{self.decimal_marker}{milliseconds:03d}"

    def cues(self, transcript: Transcript) -> Iterable[tuple[str, str, str]]:
        for cue in cut_cues(transcript.segments, self.options, transcript.language):
            text = cue.text.replace("-->", "->")
            yield self.format_timestamp(cue.start), self.format_timestamp(cue.end), text


class WriteVTT(SubtitlesWriter):
    extension = "vtt"
    always_include_hours = False
    decimal_marker = "."

    def format(self, transcript: Transcript) -> str:
        cues = "".join(
            f"{start} --> {end}\n{text}\n\n" for start, end, text in self.cues(transcript)
        )
        return f"WEBVTT\n\n{cues}"


class WriteSRT(SubtitlesWriter):
    extension = "srt"
    always_include_hours = True
    decimal_marker = ","

    def format(self, transcript: Transcript) -> str:
        return "".join(
            f"{i}\n{start} --> {end}\n{text}\n\n"
            for i, (start, end, text) in enumerate(self.cues(transcript), start=1)
        )


class WriteTSV(ResultWriter):
    """``start<TAB>end<TAB>text`` with integer milliseconds, as openai/whisper writes it."""

    extension = "tsv"

    def format(self, transcript: Transcript) -> str:
        rows = (
            f"{round(s.start * 1000)}\t{round(s.end * 1000)}\t{s.text.replace(chr(9), ' ')}\n"
            for s in transcript.segments
        )
        return "start\tend\ttext\n" + "".join(rows)


class WriteJSON(ResultWriter):
    """The seed's JSON shape."""

    extension = "json"

    def format(self, transcript: Transcript) -> str:
        return json.dumps(seed_json(transcript), ensure_ascii=False, indent=2) + "\n"


class WriteVerboseJSON(ResultWriter):
    """Segments with their scores, tokens and words."""

    extension = "verbose.json"

    def format(self, transcript: Transcript) -> str:
        document = {
            "language": transcript.language,
            "language_probability": round(transcript.language_probability, 4),
            "duration": round(transcript.duration, 3),
            "text": transcript.text,
            "segments": [_verbose_segment(i, s) for i, s in enumerate(transcript.segments)],
            **_options(transcript),
        }
        return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _verbose_segment(index: int, segment: Segment) -> dict:
    return {
        "id": index,
        "start": round(segment.start, 3),
        "end": round(segment.end, 3),
        "text": segment.text,
        "avg_logprob": round(segment.avg_logprob, 4),
        "no_speech_prob": round(segment.no_speech_prob, 4),
        "compression_ratio": round(segment.compression_ratio, 4),
        "tokens": list(segment.tokens),
        "words": [
            {
                "start": round(w.start, 3),
                "end": round(w.end, 3),
                "word": w.word,
                "probability": round(w.probability, 4),
            }
            for w in segment.words
        ],
    }


WRITERS: dict[str, type[ResultWriter]] = {
    "json": WriteJSON,
    "verbose_json": WriteVerboseJSON,
    "txt": WriteTXT,
    "srt": WriteSRT,
    "vtt": WriteVTT,
    "tsv": WriteTSV,
}
OUTPUT_FORMATS = (*WRITERS, "all")


def make_writer(
    output_format: str,
    output_dir: str | Path = ".",
    subtitles: SubtitleOptions = SubtitleOptions(),
) -> ResultWriter:
    """The writer of one format; SRT and VTT cut their cues as ``subtitles`` says."""
    if output_format not in WRITERS:
        raise WhisperTuneError(
            f"unknown output format {output_format!r}: use one of {', '.join(OUTPUT_FORMATS)}"
        )
    cls = WRITERS[output_format]
    return cls(output_dir, subtitles) if issubclass(cls, SubtitlesWriter) else cls(output_dir)


def make_writers(
    output_format: str,
    output_dir: str | Path = ".",
    subtitles: SubtitleOptions = SubtitleOptions(),
) -> list[ResultWriter]:
    """The writer of ``output_format``, or one of each format for ``all``."""
    formats = list(WRITERS) if output_format == "all" else [output_format]
    return [make_writer(fmt, output_dir, subtitles) for fmt in formats]


def get_writer(
    output_format: str,
    output_dir: str | Path,
    subtitles: SubtitleOptions = SubtitleOptions(),
) -> Callable[[Transcript, str | Path], list[Path]]:
    """A function writing a transcript in ``output_format`` (or ``all`` of them) into
    ``output_dir``, returning the paths written."""
    writers = make_writers(output_format, output_dir, subtitles)

    def write_all(transcript: Transcript, audio_path: str | Path) -> list[Path]:
        return [writer(transcript, audio_path) for writer in writers]

    return write_all


def write_transcript(
    path: str | Path,
    segments: Iterable[Segment],
    language: str,
    duration: float | None = None,
) -> Path:
    """Write segments to ``path`` in the format its name ends with (``.json`` is the seed's
    shape, ``.verbose.json`` the verbose one, else txt/srt/vtt/tsv)."""
    path = Path(path)
    segments = tuple(segments)
    name = path.name.lower()
    fmt = "verbose_json" if name.endswith(".verbose.json") else path.suffix.lower().lstrip(".")
    if fmt not in WRITERS:
        raise WhisperTuneError(
            f"{path}: cannot tell the format from the extension; use .txt, .srt, .vtt, .tsv, "
            ".json or .verbose.json"
        )
    if duration is None:
        duration = segments[-1].end if segments else 0.0
    return WRITERS[fmt]().write(Transcript(segments, language, duration), path)
