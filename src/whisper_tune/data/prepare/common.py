"""Helpers shared by the preparers: reports, durations with progress, streaming JSONL output."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from whisper_tune.audio import audio_duration
from whisper_tune.data.manifest import TimedText, Utterance
from whisper_tune.errors import WhisperTuneError

_SHOWN_PROBLEMS = 5


@dataclass
class PrepareReport:
    """What a preparer wrote, and what it left out and why."""

    outputs: dict[str, int] = field(default_factory=dict)  # manifest path -> utterances
    skipped: list[str] = field(default_factory=list)  # manifests left as they were
    problems: list[str] = field(default_factory=list)  # utterances left out, with the reason
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"wrote {path}: {count} utterances" for path, count in self.outputs.items()]
        lines += [f"kept {path} (exists; pass --overwrite to rebuild it)" for path in self.skipped]
        lines += self.notes
        if self.problems:
            lines.append(f"{len(self.problems)} utterances left out:")
            lines += [f"  {problem}" for problem in self.problems[:_SHOWN_PROBLEMS]]
            if len(self.problems) > _SHOWN_PROBLEMS:
                lines.append(f"  ... and {len(self.problems) - _SHOWN_PROBLEMS} more")
        return "\n".join(lines)


def with_durations(
    utterances: Iterable[Utterance], report: PrepareReport, desc: str
) -> list[Utterance]:
    """Fill in missing durations from the audio headers; missing or unreadable audio is left
    out and listed in ``report``."""
    items = list(utterances)
    done = []
    for utterance in tqdm(items, desc=desc, unit="file", disable=not items):
        if not Path(utterance.audio_path).is_file():
            report.problems.append(
                f"{utterance.source}: {utterance.audio_path}: audio file not found"
            )
            continue
        if utterance.duration is None:
            try:
                seconds = audio_duration(utterance.audio_path)
            except WhisperTuneError as exc:
                report.problems.append(f"{utterance.source}: {exc}")
                continue
            utterance = replace(utterance, duration=round(seconds - (utterance.start_time or 0), 3))
        done.append(utterance)
    return done


def with_single_span(utterance: Utterance) -> Utterance:
    """Add the seed's one-span ``sentences`` timestamps (0 → duration) to a whole utterance."""
    return replace(utterance, sentences=(TimedText(0.0, utterance.duration, utterance.sentence),))


def join_words(text: str) -> str:
    """Join word-segmented Chinese ("而 对 楼市") without spaces, Latin words with one."""
    return join_texts(text.split())


def join_texts(pieces: Iterable[str]) -> str:
    """Concatenate pieces with a space only where neither side is CJK."""
    joined = ""
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        if joined and not (_is_cjk(joined[-1]) or _is_cjk(piece[0])):
            joined += " "
        joined += piece
    return joined


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x2E80 <= code <= 0x9FFF  # CJK radicals, punctuation, kana, ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul
        or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF  # full-width forms (，！？)
    )


def merge_timed(
    run: list[Utterance], max_duration: float = 30.0, max_gap: float = 1.0
) -> list[Utterance]:
    """Merge consecutive slices of one recording into windows with ``sentences`` timestamps.

    ``run`` is a contiguous, time-ordered list of slices of the same file. A window closes
    when the next slice would make it longer than ``max_duration`` or starts more than
    ``max_gap`` seconds after the previous one ended. Timestamps are relative to the window.
    """
    windows: list[list[Utterance]] = []
    for item in run:
        current = windows[-1] if windows else None
        if (
            current is not None
            and item.start_time - current[-1].end_time <= max_gap
            and item.end_time - current[0].start_time <= max_duration
        ):
            current.append(item)
        else:
            windows.append([item])
    return [_window(pieces) for pieces in windows]


def _window(pieces: list[Utterance]) -> Utterance:
    start, end = pieces[0].start_time, pieces[-1].end_time
    return replace(
        pieces[0],
        sentence=join_texts(p.sentence for p in pieces),
        end_time=end,
        duration=round(end - start, 3),
        sentences=tuple(
            TimedText(round(p.start_time - start, 3), round(p.end_time - start, 3), p.sentence)
            for p in pieces
        ),
    )


def read_id_text(path: Path, join: bool = True) -> dict[str, str]:
    """Read a Kaldi/AIShell style transcript file: ``ID text ...`` per line."""
    if not path.is_file():
        raise WhisperTuneError(f"{path}: transcript file not found")
    texts: dict[str, str] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            key, _, text = line.partition(" ")
            if key in texts:
                raise WhisperTuneError(f"{path}:{number}: id {key!r} appears twice")
            texts[key] = join_words(text) if join else text.strip()
    return texts


class ManifestWriter:
    """Write JSONL lines to a hidden temporary file; ``commit`` renames it into place."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = path.with_name(f".{path.name}.tmp")
        self._handle = self._tmp.open("w", encoding="utf-8")
        self.count = 0

    def write(self, utterance: Utterance) -> None:
        record = utterance.to_json(relative_to=self.path.parent)
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1

    def commit(self) -> int:
        self._handle.close()
        self._tmp.replace(self.path)
        return self.count

    def abort(self) -> None:
        self._handle.close()
        self._tmp.unlink(missing_ok=True)
