"""Guards against Whisper's known failure modes: hallucinated text and lost timestamps.

Whisper invents text on silence, loops on a phrase (in Chinese often on one character) and,
after a loop, may carry on in another language; fine-tuned models trained without timestamps
stop emitting them. These checks run on every engine's segments, with the limits of the
:class:`~whisper_tune.inference.policy.DecodingPolicy` the text was decoded with.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import zlib
from collections.abc import Iterable, Iterator

from whisper_tune.inference.policy import DecodingPolicy, GuardLimits
from whisper_tune.inference.types import Segment

log = logging.getLogger("whisper_tune.inference")

_HAN_KANA = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# scripts whose characters are loop units on their own, even inside mixed text:
# Han, kana, hangul, Thai, Lao, Myanmar
_SYLLABIC = _HAN_KANA + "\uac00-\ud7af\u0e00-\u0eff\u1000-\u109f"
_UNIT = re.compile(f"[{_SYLLABIC}]|[^\\W{_SYLLABIC}]+|[^\\w\\s]")
_HAN_KANA_CHAR = re.compile(f"[{_HAN_KANA}]")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+(?:'[A-Za-z]+)?")

_SCRIPTS = {
    "han": "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff",
    "kana": "\u3040-\u30ff\u31f0-\u31ff",
    "hangul": "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af",
    "thai": "\u0e00-\u0e7f",
    "cyrillic": "\u0400-\u04ff",
    "greek": "\u0370-\u03ff",
    "arabic": "\u0600-\u06ff\u0750-\u077f",
    "hebrew": "\u0590-\u05ff",
    "devanagari": "\u0900-\u097f",
}
# languages not written in the Latin script: the scripts one of their segments must use
_LANGUAGE_SCRIPTS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("zh", "yue"), ("han",)),
    "ja": ("han", "kana"),
    "ko": ("hangul",),
    "th": ("thai",),
    **dict.fromkeys(("ru", "uk", "be", "bg", "mk", "kk", "mn", "tt", "ba", "tg"), ("cyrillic",)),
    "el": ("greek",),
    **dict.fromkeys(("ar", "fa", "ur", "ps", "sd"), ("arabic",)),
    **dict.fromkeys(("he", "yi"), ("hebrew",)),
    **dict.fromkeys(("hi", "mr", "ne", "sa"), ("devanagari",)),
}


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression (as openai/whisper computes it)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 1.0


def han_kana_compression_ratio(text: str) -> float:
    """:func:`compression_ratio` of the Han and kana characters of ``text`` alone.

    Three UTF-8 bytes a character make a Chinese loop look less repetitive than a Latin one
    to the whole-text ratio (the loop in the tests scores 2.0 mixed with English, 3.1 alone).
    """
    return compression_ratio("".join(_HAN_KANA_CHAR.findall(text)))


def find_loop(text: str, limits: GuardLimits = GuardLimits()) -> tuple[int, int] | None:
    """The first loop in ``text``: a phrase of up to ``max_phrase`` units repeated
    ``loop_repeats`` times in a row over at least ``loop_min_chars`` non-space characters.

    Units are words, punctuation marks, and single characters of the scripts written without
    spaces (Han, kana, hangul, Thai…), also inside mixed text. Returns the character offsets
    where the loop starts and where the first copy of its phrase ends, or None.
    """
    matches = list(_UNIT.finditer(text))
    units = [match.group().lower() for match in matches]
    for start in range(len(units)):
        for size in range(1, min(limits.max_phrase, len(units) - start) + 1):
            phrase = units[start : start + size]
            count = 1
            while units[start + count * size : start + (count + 1) * size] == phrase:
                count += 1
            if count < limits.loop_repeats:
                continue
            run = text[matches[start].start() : matches[start + count * size - 1].end()]
            if len(run) - run.count(" ") >= limits.loop_min_chars:
                return matches[start].start(), matches[start + size - 1].end()
    return None


def has_loop(text: str, limits: GuardLimits = GuardLimits()) -> bool:
    """True if ``text`` holds a loop (see :func:`find_loop`)."""
    return find_loop(text, limits) is not None


def degenerate_reason(text: str, limits: GuardLimits = GuardLimits()) -> str | None:
    """Why a decoded text looks degenerate (loops), or None; a reason to decode again."""
    if has_loop(text, limits):
        return "repeated phrase"
    ratio = han_kana_compression_ratio(text)
    if ratio > limits.cjk_compression_ratio:
        return f"Han/kana compression ratio {ratio:.2f}"
    return None


def foreign_script_reason(
    text: str, language: str | None, limits: GuardLimits = GuardLimits()
) -> str | None:
    """Why ``text`` cannot be speech in ``language``, or None.

    Only languages not written in the Latin script are checked, and only one way: a segment
    with no character of the language's script and at least ``foreign_min_words`` Latin words.
    Code-switched speech (an English brand or term inside Chinese) keeps its segment's Han
    characters, or is too short, and passes.
    """
    scripts = _LANGUAGE_SCRIPTS.get(language or "")
    if scripts is None or re.search(f"[{''.join(_SCRIPTS[s] for s in scripts)}]", text):
        return None
    words = len(_LATIN_WORD.findall(text))
    if words < limits.foreign_min_words:
        return None
    return f"{words} Latin words and no {'/'.join(scripts)} character in a {language} transcript"


def trim_loop(segment: Segment, limits: GuardLimits = GuardLimits()) -> Segment | None:
    """``segment`` cut after the first copy of a looping phrase (words and end time too);
    None if the segment is nothing but the loop; the segment itself if it does not loop."""
    loop = find_loop(segment.text, limits)
    if loop is None:
        return segment
    start, phrase_end = loop
    if not segment.text[:start].strip():
        return None
    text = segment.text[:phrase_end].strip()
    kept_chars, count, words = len(text) - text.count(" "), 0, []
    for word in segment.words:
        count += len(word.word.replace(" ", ""))
        if count > kept_chars:
            break
        words.append(word)
    return dataclasses.replace(
        segment,
        text=text,
        words=tuple(words),
        end=words[-1].end if words else segment.end,
        compression_ratio=compression_ratio(text),
    )


def hallucination_reason(
    segment: Segment,
    repeats: int = 0,
    policy: DecodingPolicy = DecodingPolicy(),
    language: str | None = None,
) -> str | None:
    """Why ``segment`` looks hallucinated, or None if it looks like speech.

    ``repeats`` counts the segments just before it with exactly the same text; ``language``
    is the transcript's (requested or detected).
    """
    limits = policy.guard
    if policy.is_silence(segment.no_speech_prob, segment.avg_logprob) or (
        segment.no_speech_prob > limits.strong_no_speech
        and segment.avg_logprob < limits.strong_log_prob
    ):
        return f"no speech (p={segment.no_speech_prob:.2f}, logprob={segment.avg_logprob:.2f})"
    if segment.compression_ratio > policy.compression_ratio_threshold:
        return f"compression ratio {segment.compression_ratio:.2f}"
    reason = degenerate_reason(segment.text, limits) or foreign_script_reason(
        segment.text, language, limits
    )
    if reason:
        return reason
    if repeats >= 2:
        return f"same text as the {repeats} segments before"
    return None


def guard_segments(
    segments: Iterable[Segment],
    policy: DecodingPolicy = DecodingPolicy(),
    language: str | None = None,
) -> Iterator[Segment]:
    """Yield the segments that pass :func:`hallucination_reason`, a loop trimmed off first
    (the speech before it is kept), logging what is cut or dropped."""
    previous_text, repeats = None, 0
    for original in segments:
        segment = trim_loop(original, policy.guard)
        if segment is None:
            _log_dropped(original, "repeated phrase")
            continue
        if segment is not original:
            log.info("cut a loop off %r: kept %r", original.text, segment.text)
        repeats = repeats + 1 if segment.text == previous_text else 0
        previous_text = segment.text
        reason = hallucination_reason(segment, repeats, policy, language)
        if reason:
            _log_dropped(segment, reason)
            continue
        yield segment


def _log_dropped(segment: Segment, reason: str) -> None:
    log.info("dropped segment %.2f-%.2f %r: %s", segment.start, segment.end, segment.text, reason)


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
