"""Long recordings with SRT/VTT subtitles → JSONL slices, one per cue (or merged windows).

Each ``name.srt`` or ``name.vtt`` pairs with the audio or video file of the same name in the
same folder (``name.wav``, ``name.mp3``, ``name.mp4`` ...).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from whisper_tune.data.manifest import Utterance, write_manifest
from whisper_tune.data.prepare.common import PrepareReport, join_texts, merge_timed
from whisper_tune.data.prepare.long_audio import media_seconds
from whisper_tune.errors import WhisperTuneError
from whisper_tune.languages import language_code

MEDIA_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".aac", ".mp4", ".mkv", ".webm")
_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_CUE_TIMES = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_TAGS = re.compile(r"<[^>]*>|\{\\[^}]*\}")


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str
    line: int


def parse_subtitles(path: Path) -> list[Cue]:
    """Cues of an SRT or WebVTT file, in time order, tags and entities removed."""
    cues: list[Cue] = []
    timing: tuple[float, float, int] | None = None
    lines: list[str] = []
    text = path.read_text(encoding="utf-8-sig")
    for number, raw in enumerate(text.splitlines() + [""], 1):
        if "-->" in raw:
            match = _CUE_TIMES.match(raw)
            if match is None:
                raise WhisperTuneError(
                    f"{path}:{number}: cannot read the cue times {raw.strip()!r}"
                )
            start, end = _seconds(match.groups()[:4]), _seconds(match.groups()[4:])
            if end <= start:
                raise WhisperTuneError(f"{path}:{number}: cue ends ({end:g} s) before it starts")
            timing, lines = (start, end, number), []
        elif raw.strip() and timing is not None:
            lines.append(html.unescape(_TAGS.sub("", raw)))
        elif not raw.strip() and timing is not None:
            cues.append(Cue(timing[0], timing[1], join_texts(lines), timing[2]))
            timing = None
    return sorted(cues, key=lambda cue: cue.start)


def prepare_subtitles(
    audio_dir: str | Path,
    annotation_dir: str | Path = "dataset",
    name: str = "train",
    language: str | None = None,
    timestamps: bool = False,
    max_duration: float = 30.0,
    overwrite: bool = False,
) -> PrepareReport:
    """Write ``<annotation_dir>/<name>.jsonl`` from every subtitle file under ``audio_dir``.

    Each cue becomes a slice of its recording. With ``timestamps``, neighbouring cues are
    merged into windows of at most ``max_duration`` seconds carrying per-cue ``sentences``.
    Cues without text are left out; cues running past the recording's end are cut there.
    """
    root = Path(audio_dir)
    output = Path(annotation_dir) / f"{name}.jsonl"
    report = PrepareReport()
    if output.exists() and not overwrite:
        report.skipped.append(str(output))
        return report
    subtitles = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".srt", ".vtt"))
    if not subtitles:
        raise WhisperTuneError(f"{root}: no .srt or .vtt files found")
    code = language_code(language)
    utterances: list[Utterance] = []
    for subtitle in tqdm(subtitles, desc="subtitles", unit="file"):
        media = _media_for(subtitle)
        if media is None:
            report.problems.append(f"{subtitle}: no audio file with the same name next to it")
            continue
        try:
            length = media_seconds(media)
        except WhisperTuneError as exc:
            report.problems.append(str(exc))
            continue
        run = []
        for cue in parse_subtitles(subtitle):
            where = f"{subtitle}:{cue.line}"
            if not cue.text:
                continue
            if cue.start >= length:
                report.problems.append(
                    f"{where}: cue starts after the audio's end ({length:.2f} s)"
                )
                continue
            end = min(cue.end, round(length, 3))
            run.append(
                Utterance(
                    str(media),
                    cue.text,
                    cue.start,
                    end,
                    round(end - cue.start, 3),
                    code,
                    source=where,
                )
            )
        utterances += merge_timed(run, max_duration) if timestamps else run
    report.outputs[str(output)] = write_manifest(output, utterances)
    return report


def _media_for(subtitle: Path) -> Path | None:
    for suffix in MEDIA_SUFFIXES:
        for candidate in (subtitle.with_suffix(suffix), subtitle.with_suffix(suffix.upper())):
            if candidate.is_file():
                return candidate
    return None


def _seconds(parts: tuple[str | None, ...]) -> float:
    hours, minutes, seconds, fraction = parts
    return round(
        int(hours or 0) * 3600
        + int(minutes) * 60
        + int(seconds)
        + int(fraction.ljust(3, "0")) / 1000,
        3,
    )
