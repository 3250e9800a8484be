"""Which decoded segments become training data: thresholds on the teacher's own scores and,
optionally, agreement between two decodes of the segment (distil-whisper's WER filter).

The score thresholds default to the decoding policy's (:class:`~whisper_tune.inference.policy.
DecodingPolicy`): a segment the teacher would have decoded again at a higher temperature, or
would call silence, is not a label to train on.
"""

from __future__ import annotations

from dataclasses import dataclass

from whisper_tune.errors import WhisperTuneError
from whisper_tune.eval_config import scoring_option
from whisper_tune.inference.chunks import WINDOW_SECONDS
from whisper_tune.inference.policy import DecodingPolicy
from whisper_tune.inference.types import Segment
from whisper_tune.languages import default_metric
from whisper_tune.options import check_ranges, option
from whisper_tune.text import error_rate, score_transcript, scoring_options

FILTERS = "filters (a segment failing one is left out of the manifest)"
AGREEMENT = "agreement filter (a second decode of each segment must agree with the first)"
AGREEMENTS = ("none", "beam")


@dataclass(frozen=True)
class Verdict:
    """One decoded segment (times in seconds from the start of its file) and what the
    filters made of it."""

    start: float
    end: float
    text: str
    dropped_by: str | None = None  # the first filter it failed (see LabelFilters.reason)
    disagreement: float | None = None  # error rate between the two decodes, when checked

    @property
    def kept(self) -> bool:
        return self.dropped_by is None


@dataclass(frozen=True)
class LabelFilters:
    """Thresholds a pseudo-labelled segment must pass, and the optional agreement check."""

    min_avg_logprob: float = option(
        DecodingPolicy.log_prob_threshold,
        help="drop a segment whose mean token log-probability is lower (default: the "
        "decoding policy's temperature-fallback threshold)",
        group=FILTERS,
    )
    max_no_speech_prob: float = option(
        DecodingPolicy.no_speech_threshold,
        help="drop a segment whose window's no-speech probability is higher (default: the "
        "decoding policy's silence threshold)",
        group=FILTERS,
    )
    max_compression_ratio: float = option(
        DecodingPolicy.compression_ratio_threshold,
        help="drop a segment whose text compresses better than this (gzip ratio: loops and "
        "repeated phrases; as default, the decoding policy's threshold)",
        group=FILTERS,
    )
    agreement: str = option(
        "none",
        help="beam: the teacher decodes each segment again with the other search (greedy "
        "when --beam_size > 1, else a beam of 5) and the two texts must agree",
        group=AGREEMENT,
        choices=AGREEMENTS,
    )
    agreement_model: str | None = option(
        None,
        help="a second model (any --model_path form, same engine settings) decodes each "
        "segment and must agree with the teacher",
        group=AGREEMENT,
    )
    max_disagreement: float = option(
        0.1,
        help="drop a segment whose two decodes differ by more than this error rate (WER; CER "
        "for Chinese, Japanese, Thai...; normalised as evaluate scores; distil-whisper's "
        "threshold is 0.1)",
        group=AGREEMENT,
    )
    remove_pun: bool = scoring_option("remove_pun", AGREEMENT)
    to_simple: bool = scoring_option("to_simple", AGREEMENT)
    english_normalizer: bool = scoring_option("english_normalizer", AGREEMENT)

    def __post_init__(self) -> None:
        check_ranges(
            self,
            max_no_speech_prob=0 <= self.max_no_speech_prob <= 1,
            max_compression_ratio=self.max_compression_ratio > 0,
            max_disagreement=self.max_disagreement >= 0,
            agreement=self.agreement in AGREEMENTS,
        )
        if self.agreement != "none" and self.agreement_model:
            raise WhisperTuneError(
                "give --agreement beam or --agreement_model, not both (one second decode)"
            )

    @property
    def checks_agreement(self) -> bool:
        return self.agreement != "none" or bool(self.agreement_model)

    def verdict(self, segment: Segment) -> Verdict:
        """``segment`` judged by the score thresholds (agreement is checked later, on the
        segments that pass them)."""
        return Verdict(segment.start, segment.end, segment.text, self._failed(segment))

    def _failed(self, segment: Segment) -> str | None:
        if not segment.text.strip():
            return "no_text"
        if segment.end - segment.start > WINDOW_SECONDS:
            return "too_long"
        if segment.avg_logprob < self.min_avg_logprob:
            return "avg_logprob"
        if segment.no_speech_prob > self.max_no_speech_prob:
            return "no_speech_prob"
        if segment.compression_ratio > self.max_compression_ratio:
            return "compression_ratio"
        return None

    def disagreement(self, text: str, other: str, language: str | None) -> float:
        """The error rate of ``other`` against ``text``, normalised and counted as evaluate
        scores ``language`` (WER, or CER where words are not spaced)."""
        options = scoring_options(
            language, self.remove_pun, self.to_simple, self.english_normalizer
        )
        scored = score_transcript(text, other, default_metric(language), options)
        return error_rate(scored.errors, scored.reference_length)

    def reason(self, dropped_by: str) -> str:
        """What a ``Verdict.dropped_by`` key means, with this run's threshold."""
        return {
            "no_text": "no text",
            "too_long": f"longer than {WINDOW_SECONDS} s",
            "avg_logprob": f"average log-prob under {self.min_avg_logprob}",
            "no_speech_prob": f"no-speech probability over {self.max_no_speech_prob}",
            "compression_ratio": f"compression ratio over {self.max_compression_ratio}",
            "disagreement": f"decodes disagreeing by over {self.max_disagreement:.0%}",
        }[dropped_by]
