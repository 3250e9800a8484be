"""Synthetic English speech for the benchmarks: short clips and long files, with their text."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from whisper_tune.audio import SAMPLE_RATE
from whisper_tune.synth import concatenate, synthesize
from whisper_tune.text import TextOptions, count_errors, metric_units

_SCORING = TextOptions(remove_pun=True, english_normalizer=True)


@dataclass(frozen=True)
class Speech:
    audio: np.ndarray
    text: str

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def spoken(sentences: Sequence[str], seed: int = 0) -> list[Speech]:
    """Each sentence spoken by the bundled English voice (deterministic for a seed)."""
    print(f"  synthesising {len(sentences)} sentences", file=sys.stderr, flush=True)
    return [Speech(synthesize(text, "en", seed=seed + i), text) for i, text in enumerate(sentences)]


def long_speech(parts: Sequence[Speech], min_seconds: float, gap_seconds: float = 0.8) -> Speech:
    """``parts`` repeated in order, ``gap_seconds`` apart, until at least ``min_seconds`` long."""
    chosen: list[Speech] = []
    total = -gap_seconds
    for part in itertools.cycle(parts):
        chosen.append(part)
        total += part.seconds + gap_seconds
        if total >= min_seconds:
            break
    audio = concatenate([p.audio for p in chosen], gap_seconds)
    return Speech(audio, " ".join(p.text for p in chosen))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER after Whisper's English normaliser and punctuation removal."""
    return corpus_word_error_rate([(reference, hypothesis)])


def corpus_word_error_rate(pairs: Sequence[tuple[str, str]]) -> float:
    """WER over (reference, hypothesis) pairs: all errors / all reference words, scored as
    :func:`word_error_rate` scores one pair."""
    errors = words = 0
    for reference, hypothesis in pairs:
        ref = metric_units(_SCORING.apply(reference), "wer")
        errors += count_errors(ref, metric_units(_SCORING.apply(hypothesis), "wer"))
        words += len(ref)
    return errors / max(1, words)
