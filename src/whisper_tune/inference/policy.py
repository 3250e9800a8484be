"""The decoding policy: every threshold and fallback rule both engines and the guard follow.

One frozen record, built from the caller's :class:`~whisper_tune.inference.types.
TranscribeOptions` by :meth:`TranscribeOptions.policy`, read by the CTranslate2 engine (as
faster-whisper's arguments), the transformers engine (its own fallback loop) and the
hallucination guard, and returned with every transcript in
``TranscriptionInfo.transcription_options`` (as faster-whisper does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GuardLimits:
    """The hallucination guard's own limits, on top of the policy's thresholds."""

    strong_no_speech: float = 0.8  # a near-certain silence needs less doubt about the text
    strong_log_prob: float = -0.5
    loop_repeats: int = 4  # a phrase repeated this many times in a row is a loop ...
    loop_min_chars: int = 8  # ... once the repeated run spans this many non-space characters
    max_phrase: int = 8  # longest phrase (in words, or characters of CJK/Thai) checked
    # gzip ratio past which the Han/kana characters of a text are a loop: normal Chinese from
    # the demo corpus stays under 1.8 even for 300 characters (a 30 s window holds ~150),
    # while a one-character loop compresses past 3 (Latin text keeps openai/whisper's 2.4)
    cjk_compression_ratio: float = 2.0
    # a segment without one character of the language's script and with this many Latin words
    # is text in the wrong language (an English sentence invented after a Chinese loop); fewer
    # Latin words pass, as do mixed segments: code-switched brands and terms are real speech
    foreign_min_words: int = 4


@dataclass(frozen=True)
class DecodingPolicy:
    """Temperature fallback, silence and loop thresholds, conditioning and prompt of a decode.

    Thresholds are openai/whisper's defaults: a window is decoded again at the next temperature
    when its text compresses better than ``compression_ratio_threshold``, its mean token
    log-probability is under ``log_prob_threshold`` or (with the guard) it loops; it is
    silence when ``no_speech_threshold`` is exceeded and the log-probability is under its
    threshold.
    """

    temperature: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float = 2.4
    log_prob_threshold: float = -1.0
    no_speech_threshold: float = 0.6
    condition_on_previous_text: bool = True
    prompt_reset_on_temperature: float = 0.5  # a window decoded hotter resets the history
    initial_prompt: str | None = None  # conditions the first window
    hotwords: str | None = None  # conditions every window
    hallucination_guard: bool = True
    guard: GuardLimits = GuardLimits()

    def is_silence(self, no_speech_prob: float, avg_logprob: float) -> bool:
        """A window the model thinks is silence and decoded into unlikely tokens."""
        return no_speech_prob > self.no_speech_threshold and avg_logprob < self.log_prob_threshold

    def drops_as_silence(self, no_speech_prob: float, avg_logprob: float) -> bool:
        """A window whose text the hallucination guard drops: the guard is on and the window
        is silence (:meth:`is_silence`)."""
        return self.hallucination_guard and self.is_silence(no_speech_prob, avg_logprob)

    def fails(self, avg_logprob: float, compression_ratio: float) -> bool:
        """Text that would be decoded again at the next temperature: too repetitive or too
        unlikely."""
        return (
            compression_ratio > self.compression_ratio_threshold
            or avg_logprob < self.log_prob_threshold
        )

    def as_dict(self) -> dict:
        """The policy as JSON-ready data (as written with every transcript)."""
        return asdict(self)
