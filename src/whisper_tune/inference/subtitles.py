"""Subtitle cues cut from word timings, with openai/whisper's ``SubtitlesWriter`` options.

Words fill a line up to ``max_line_width`` characters and ``max_words_per_line`` words;
lines fill a cue up to ``max_line_count`` lines. Without ``max_line_count`` every segment is
cut on its own (one cue of as many lines as it needs, or one-line cues when
``max_words_per_line`` is given); with it and a line limit, cues run across segments. A pause
of more than :data:`LONG_PAUSE` seconds between words always starts a new cue. Width counts
characters as a reader does: a CJK character is one, a combining mark none. A word wider
than the line stands alone on its line. A segment without word timings becomes one cue.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from whisper_tune.errors import WhisperTuneError
from whisper_tune.inference.postprocess import word_separator
from whisper_tune.inference.types import Segment, Word

LONG_PAUSE = 3.0  # seconds of silence between two words that end a cue
_ZERO_WIDTH = frozenset({"Mn", "Me", "Cf"})  # combining marks and format characters


@dataclass(frozen=True)
class SubtitleOptions:
    """How SRT and VTT cues are cut; the defaults keep one cue per segment."""

    max_line_width: int | None = None
    max_line_count: int | None = None
    max_words_per_line: int | None = None
    highlight_words: bool = False

    def __post_init__(self) -> None:
        for name in ("max_line_width", "max_line_count", "max_words_per_line"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise WhisperTuneError(f"--{name} must be at least 1, got {value}")

    @property
    def uses_words(self) -> bool:
        """Whether cues are cut from word timings (the transcript needs word timestamps)."""
        limits = (self.max_line_width, self.max_line_count, self.max_words_per_line)
        return self.highlight_words or any(limit is not None for limit in limits)

    @property
    def lines_per_cue(self) -> int | None:
        if self.max_line_count is None and self.max_words_per_line is not None:
            return 1
        return self.max_line_count

    @property
    def joins_segments(self) -> bool:
        lines_limited = self.max_line_width is not None or self.max_words_per_line is not None
        return self.max_line_count is not None and lines_limited


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str  # lines separated by "\n"


def text_width(text: str) -> int:
    """Characters as a reader counts them: each CJK character is one, combining marks none."""
    return sum(unicodedata.category(char) not in _ZERO_WIDTH for char in text)


def cut_cues(segments: Iterable[Segment], options: SubtitleOptions, language: str) -> Iterator[Cue]:
    """The cues of a transcript in ``language``, in order; one per segment when ``options``
    set no limit."""
    separator = word_separator(language)
    run: list[Word] = []  # words of consecutive segments cut together
    for segment in segments:
        words = _spaced_words(segment, separator) if options.uses_words else []
        if words and options.joins_segments:
            run.extend(words)
            continue
        yield from _word_cues(run, options)
        run = []
        if words:
            yield from _word_cues(words, options)
        else:
            yield Cue(segment.start, segment.end, segment.text)
    yield from _word_cues(run, options)


def _spaced_words(segment: Segment, separator: str) -> list[Word]:
    """The segment's words, each starting with the space that precedes it in the segment's
    text (the engines strip words); the first one, and any not found, with ``separator``."""
    spaced: list[Word] = []
    position = 0
    for word in segment.words:
        core = word.word.strip()
        if not core:
            continue
        found = segment.text.find(core, position)
        space = separator
        if found >= 0 and spaced:
            space = " " if any(c.isspace() for c in segment.text[position:found]) else ""
        if found >= 0:
            position = found + len(core)
        spaced.append(dataclasses.replace(word, word=space + core))
    return spaced


def _word_cues(words: Sequence[Word], options: SubtitleOptions) -> Iterator[Cue]:
    for lines in _group(words, options):
        text = _cue_text(lines)
        if not options.highlight_words:
            yield Cue(lines[0][0].start, lines[-1][-1].end, text)
            continue
        shown = lines[0][0].start  # the end of the last cue of this group
        for index, word in enumerate(w for line in lines for w in line):
            start = max(word.start, shown)
            if start > shown:
                yield Cue(shown, start, text)
            shown = max(word.end, start)
            yield Cue(start, shown, _cue_text(lines, underline=index))


def _group(words: Sequence[Word], options: SubtitleOptions) -> Iterator[list[list[Word]]]:
    """Words into cues of lines."""
    cue: list[list[Word]] = []
    for word in words:
        pause = bool(cue) and word.start - cue[-1][-1].end > LONG_PAUSE
        if cue and not pause and _fits(cue[-1], word, options):
            cue[-1].append(word)
            continue
        limit = options.lines_per_cue
        if cue and (pause or (limit is not None and len(cue) >= limit)):
            yield cue
            cue = []
        cue.append([word])
    if cue:
        yield cue


def _fits(line: list[Word], word: Word, options: SubtitleOptions) -> bool:
    if options.max_words_per_line is not None and len(line) >= options.max_words_per_line:
        return False
    width = options.max_line_width
    return width is None or text_width("".join(w.word for w in (*line, word)).strip()) <= width


def _cue_text(lines: list[list[Word]], underline: int = -1) -> str:
    """The cue's lines; the word at flat index ``underline`` wrapped in ``<u>…</u>``."""
    texts, index = [], 0
    for line in lines:
        parts = []
        for word in line:
            parts.append(_underlined(word.word) if index == underline else word.word)
            index += 1
        texts.append("".join(parts).strip())
    return "\n".join(texts)


def _underlined(word: str) -> str:
    core = word.lstrip()
    return f"{word[: len(word) - len(core)]}<u>{core.rstrip()}</u>"
