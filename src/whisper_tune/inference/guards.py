"""Guards against Whisper's known failure modes: hallucinated text and lost timestamps.

Whisper invents text on silence and can loop on a phrase; fine-tuned models trained without
timestamps stop emitting them. These checks run on every engine's segments.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from whisper_tune.inference.types import Segment

log = logging.getLogger("whisper_tune.inference")

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class GuardThresholds:
    """Limits past which a segment is taken for a hallucination (openai/whisper's defaults)."""

    logprob: float = -1.0  # with no_speech: a likely "silence" decoded into weak text
    no_speech: float = 0.6
    strong_no_speech: float = 0.8  # a near-certain silence needs less doubt about the text
    strong_logprob: float = -0.5
    compression_ratio: float = 2.4  # gzip ratio of the text: loops compress very well
    loop_repeats: int = 4  # a phrase repeated this many times in a row is a loop
    max_phrase: int = 8  # longest phrase (in words/characters) checked for loops


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression (as openai/whisper computes it)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 1.0


def has_loop(text: str, repeats: int = 4, max_phrase: int = 8) -> bool:
    """True if some phrase of up to ``max_phrase`` units repeats ``repeats`` times in a row.

    Units are words, or single characters for text without spaces (Chinese, Japanese).
    """
    units = _WORD.findall(text) if " " in text.strip() else [c for c in text if not c.isspace()]
    units = [u.lower() for u in units]
    for size in range(1, max_phrase + 1):
        for start in range(0, len(units) - size * repeats + 1):
            phrase = units[start : start + size]
            if all(
                units[start + k * size : start + (k + 1) * size] == phrase for k in range(repeats)
            ):
                return True
    return False


def hallucination_reason(
    segment: Segment, repeats: int = 0, limits: GuardThresholds = GuardThresholds()
) -> str | None:
    """Why ``segment`` looks hallucinated, or None if it looks like speech.

    ``repeats`` counts the segments just before it with exactly the same text.
    """
    if (segment.no_speech_prob > limits.no_speech and segment.avg_logprob < limits.logprob) or (
        segment.no_speech_prob > limits.strong_no_speech
        and segment.avg_logprob < limits.strong_logprob
    ):
        return f"no speech (p={segment.no_speech_prob:.2f}, logprob={segment.avg_logprob:.2f})"
    if segment.compression_ratio > limits.compression_ratio:
        return f"compression ratio {segment.compression_ratio:.2f}"
    if has_loop(segment.text, limits.loop_repeats, limits.max_phrase):
        return "repeated phrase"
    if repeats >= 2:
        return f"same text as the {repeats} segments before"
    return None


def guard_segments(
    segments: Iterable[Segment], limits: GuardThresholds = GuardThresholds()
) -> Iterator[Segment]:
    """Yield the segments that pass :func:`hallucination_reason`, logging the dropped ones."""
    previous_text, repeats = None, 0
    for segment in segments:
        repeats = repeats + 1 if segment.text == previous_text else 0
        previous_text = segment.text
        reason = hallucination_reason(segment, repeats, limits)
        if reason:
            log.info(
                "dropped segment %.2f-%.2f %r: %s", segment.start, segment.end, segment.text, reason
            )
            continue
        yield segment


def watch_timestamps(segments: Iterable[Segment], timestamp_begin: int) -> Iterator[Segment]:
    """Pass segments through; warn once at the end if most carried no end timestamp.

    A segment decoded with timestamps holds a start and an end timestamp token. A model
    fine-tuned without timestamps emits only the forced first one, so every segment then
    spans its whole 30-second window and the times are meaningless.
    """
    total = missing = 0
    for segment in segments:
        total += 1
        if sum(token >= timestamp_begin for token in segment.tokens) < 2:
            missing += 1
        yield segment
    if total and missing * 2 > total:
        log.warning(
            "the model returned no timestamps for %d of %d segments (was it fine-tuned "
            "without timestamps?); segment times are window bounds, not speech times",
            missing,
            total,
        )
