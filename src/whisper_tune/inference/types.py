"""Typed results and options shared by every engine, writer, the server and the GUI."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from whisper_tune.inference.policy import DecodingPolicy


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    """One decoded stretch of audio; times in seconds from the start of the file."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 1.0
    tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class TranscriptionInfo:
    language: str
    language_probability: float
    duration: float
    transcription_options: DecodingPolicy | None = None  # the policy actually decoded with


@dataclass
class TranscribeOptions:
    """Decoding options; every engine honours those it supports and says which it ignores."""

    language: str | None = None  # Whisper code; None = detect
    task: str = "transcribe"
    beam_size: int = 5
    batch_size: int = 1  # >1: batched long-form decoding
    vad_filter: bool = False
    word_timestamps: bool = False
    timestamps: bool = True
    initial_prompt: str | None = DecodingPolicy.initial_prompt
    hotwords: str | None = DecodingPolicy.hotwords
    temperature: float | tuple[float, ...] = DecodingPolicy.temperature
    condition_on_previous_text: bool = DecodingPolicy.condition_on_previous_text
    hallucination_guard: bool = DecodingPolicy.hallucination_guard
    to_simple: bool = False
    remove_pun: bool = False
    extra: dict = field(default_factory=dict)
    # set by the caller (another thread) to stop decoding early: engines check it per window
    cancel: threading.Event | None = field(default=None, compare=False, repr=False)

    def policy(self) -> DecodingPolicy:
        """The decoding policy these options ask for (thresholds at their defaults)."""
        temperature = self.temperature
        return DecodingPolicy(
            temperature=tuple(temperature)
            if isinstance(temperature, tuple | list)
            else (temperature,),
            condition_on_previous_text=self.condition_on_previous_text,
            initial_prompt=self.initial_prompt,
            hotwords=self.hotwords,
            hallucination_guard=self.hallucination_guard,
        )


class Transcriber(Protocol):
    """What the CLI, server and GUI rely on."""

    engine: str

    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Decode 16 kHz mono float32 ``audio``; segments are yielded as they are decoded.

        Once ``options.cancel`` is set, decoding stops before the next 30-second window (or
        block) and the iterator ends early.
        """
        ...
