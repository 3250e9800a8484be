"""Text normalisation shared by training, evaluation and inference.

One place decides what "the same transcript" means: punctuation removal, traditional →
simplified Chinese (OpenCC), Whisper's English normaliser, and CER/WER scoring.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import jiwer

_SPACES = re.compile(r"\s+")
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_SPACE_BETWEEN_CJK = re.compile(rf"(?<=[{_CJK}]) (?=[{_CJK}])")


def remove_punctuation(text: str) -> str:
    """Drop every Unicode punctuation/symbol character (ASCII and CJK alike)."""
    kept = (" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    spaced = _SPACES.sub(" ", "".join(kept)).strip()
    return _SPACE_BETWEEN_CJK.sub("", spaced)


@functools.lru_cache(maxsize=1)
def _opencc_t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional → simplified Chinese; other scripts pass through unchanged."""
    return _opencc_t2s().convert(text)


@functools.lru_cache(maxsize=1)
def _english_normalizer():
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer({})


def normalize_english(text: str) -> str:
    """Whisper's English normaliser: numbers ("twenty" = "20"), titles ("Dr." = "doctor"),
    contractions, fillers and punctuation. British/American spelling is not unified."""
    return _english_normalizer()(text)


@dataclass(frozen=True)
class TextOptions:
    """How to clean a transcript before it is shown or scored."""

    remove_pun: bool = False
    to_simple: bool = False
    english_normalizer: bool = False
    lowercase: bool = False  # case-fold (Whisper's English normaliser always does)

    def apply(self, text: str) -> str:
        if self.to_simple:
            text = to_simplified(text)
        if self.english_normalizer:
            text = normalize_english(text)
        if self.lowercase:
            text = text.casefold()
        if self.remove_pun:
            text = remove_punctuation(text)
        return _SPACES.sub(" ", text).strip()


def metric_units(text: str, metric: str) -> list[str]:
    """Split text into the units a metric counts: characters (no spaces) or words."""
    if metric == "cer":
        return [ch for ch in text if not ch.isspace()]
    if metric == "wer":
        return text.split()
    raise ValueError(f"unknown metric {metric!r} (use cer or wer)")


@dataclass(frozen=True)
class Edit:
    """One step of a hypothesis's alignment to its reference: ``equal``, ``substitute``
    (as many units on both sides), ``delete`` (reference units only) or ``insert``."""

    kind: str
    reference: tuple[str, ...]
    hypothesis: tuple[str, ...]


def align_units(reference: list[str], hypothesis: list[str]) -> list[Edit]:
    """The minimum-edit alignment of two unit lists (via jiwer) that the metric counts."""
    if not reference or not hypothesis:
        kind = "insert" if hypothesis else "delete"
        return [Edit(kind, tuple(reference), tuple(hypothesis))] if reference or hypothesis else []
    out = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    return [
        Edit(
            chunk.type,
            tuple(reference[chunk.ref_start_idx : chunk.ref_end_idx]),
            tuple(hypothesis[chunk.hyp_start_idx : chunk.hyp_end_idx]),
        )
        for chunk in out.alignments[0]
    ]


def count_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Substitutions + deletions + insertions between two unit lists."""
    return sum(
        max(len(edit.reference), len(edit.hypothesis))
        for edit in align_units(reference, hypothesis)
        if edit.kind != "equal"
    )


@dataclass(frozen=True)
class Scored:
    """One transcript scored against its reference, both as normalised for scoring."""

    reference: str
    hypothesis: str
    errors: int
    reference_length: int


def score_transcript(reference: str, hypothesis: str, metric: str, options: TextOptions) -> Scored:
    """Normalise both texts with ``options`` and count ``metric`` errors (evaluate and the
    checkpoint metric during fine-tuning both score this way)."""
    ref_text, hyp_text = options.apply(reference), options.apply(hypothesis)
    ref_units = metric_units(ref_text, metric)
    errors = count_errors(ref_units, metric_units(hyp_text, metric))
    return Scored(ref_text, hyp_text, errors, len(ref_units))


def error_rate(errors: int, units: int) -> float:
    """Errors per reference unit; with no reference units, 1.0 if anything was said."""
    return errors / units if units else float(errors > 0)


def scoring_options(
    language: str | None, remove_pun: bool, to_simple: bool, english_normalizer: bool
) -> TextOptions:
    """How transcripts in ``language`` (a code; None = unknown) are normalised for scoring, as
    the field reports scores: Whisper's English normaliser for English (unless turned off),
    else case-folding plus the punctuation and Chinese script options."""
    english = english_normalizer and language == "en"
    return TextOptions(remove_pun, to_simple, english_normalizer=english, lowercase=True)


def normalization_name(options: TextOptions) -> str:
    """A short description of what ``options`` do, for reports."""
    if options.english_normalizer:
        return "whisper-english"
    steps = ["casefold"] if options.lowercase else []
    steps += ["no punctuation"] * options.remove_pun + ["simplified Chinese"] * options.to_simple
    return ", ".join(steps) or "none"
