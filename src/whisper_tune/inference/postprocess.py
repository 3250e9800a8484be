"""What every engine does to its decoded segments: guards, then the user's text options."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from whisper_tune.inference.guards import guard_segments, watch_timestamps
from whisper_tune.inference.policy import DecodingPolicy
from whisper_tune.inference.types import Segment, TranscribeOptions
from whisper_tune.text import TextOptions

# Languages written without spaces between words: segment texts are joined without one.
_NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue", "bo"})


def finish_segments(
    segments: Iterable[Segment],
    options: TranscribeOptions,
    timestamp_begin: int,
    policy: DecodingPolicy,
    language: str,
) -> Iterator[Segment]:
    """Apply the timestamp watch, the hallucination guard (``policy``'s, for text in
    ``language``) and ``to_simple``/``remove_pun``; segments left without text or without
    duration are dropped."""
    if options.timestamps:
        segments = watch_timestamps(segments, timestamp_begin)
    if policy.hallucination_guard:
        segments = guard_segments(segments, policy, language)
    text_options = TextOptions(remove_pun=options.remove_pun, to_simple=options.to_simple)
    for segment in segments:
        text = text_options.apply(segment.text)
        if not text or segment.end <= segment.start:
            continue
        words = tuple(
            dataclasses.replace(word, word=text_options.apply(word.word)) for word in segment.words
        )
        yield dataclasses.replace(segment, text=text, words=words)


def join_text(segments: Iterable[Segment], language: str) -> str:
    """The whole transcript: segment texts joined by a space, or by nothing for Chinese etc."""
    return word_separator(language).join(segment.text for segment in segments).strip()


def word_separator(language: str) -> str:
    """What stands between two words or segments of ``language``: a space, or nothing for
    languages written without spaces."""
    return "" if language in _NO_SPACE_LANGUAGES else " "
