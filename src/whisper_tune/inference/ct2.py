"""The CTranslate2 engine: faster-whisper's ``WhisperModel`` (batched when asked)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from whisper_tune.audio import SAMPLE_RATE
from whisper_tune.errors import ModelError
from whisper_tune.inference.chunks import WINDOW_SAMPLES, quiet_windows, until_cancelled
from whisper_tune.inference.policy import DecodingPolicy
from whisper_tune.inference.postprocess import finish_segments
from whisper_tune.inference.types import Segment, TranscribeOptions, TranscriptionInfo, Word
from whisper_tune.languages import check_task, language_code

BLOCK_SAMPLES = 4 * WINDOW_SAMPLES  # faster-whisper gets long audio in ~2-minute blocks


class CT2Transcriber:
    """A :class:`~whisper_tune.inference.types.Transcriber` over a CTranslate2 model dir
    (checked by :func:`whisper_tune.models.resolve_ct2_model`: it holds ``tokenizer.json``, so
    faster-whisper never reaches for the hub)."""

    engine = "ct2"

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "cpu",
        compute_type: str = "default",
        num_workers: int = 1,
        cpu_threads: int = 0,
    ) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        self.model_dir = Path(model_dir)
        try:
            with _ctranslate2_log_level(logging.ERROR):  # not "float16 converted to float32"
                self.model = WhisperModel(
                    str(self.model_dir),
                    device=device,
                    compute_type=compute_type,
                    num_workers=num_workers,
                    cpu_threads=cpu_threads,
                    local_files_only=True,
                )
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"cannot load CTranslate2 model {self.model_dir}: {exc}") from None
        self.batched = BatchedInferencePipeline(self.model)
        self.timestamp_begin = self.model.hf_tokenizer.token_to_id("<|notimestamps|>") + 1

    @property
    def is_multilingual(self) -> bool:
        return self.model.model.is_multilingual

    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Decode ``audio``; segments are decoded lazily as the iterator is consumed.

        Long audio goes to faster-whisper in blocks of about two minutes cut at pauses, so
        its features (computed for a whole input at once) never grow past one block; when
        conditioning on previous text, a block's text is the next block's initial prompt.
        """
        check_task(options.task)
        policy = options.policy()
        if options.batch_size > 1:
            # faster-whisper's batched pipeline decodes at the first temperature only and
            # without previous text
            policy = dataclasses.replace(
                policy, temperature=policy.temperature[:1], condition_on_previous_text=False
            )
        blocks = quiet_windows(audio, BLOCK_SAMPLES)
        first, first_info = self._transcribe_block(
            audio[slice(*blocks[0])],
            options,
            policy,
            language_code(options.language),
            policy.initial_prompt,
        )

        def segments() -> Iterator[Segment]:
            raw_segments, texts = first, []
            for index, (start, end) in enumerate(until_cancelled(blocks, options.cancel)):
                if index:
                    prompt = " ".join(texts) if policy.condition_on_previous_text else None
                    raw_segments, _ = self._transcribe_block(
                        audio[start:end], options, policy, first_info.language, prompt or None
                    )
                texts = []
                # faster-whisper decodes a block's windows lazily, as segments are asked for
                for raw in until_cancelled(raw_segments, options.cancel):
                    texts.append(raw.text.strip())
                    yield _segment(raw, start / SAMPLE_RATE, end / SAMPLE_RATE)

        info = TranscriptionInfo(
            language=first_info.language,
            language_probability=float(first_info.language_probability),
            duration=len(audio) / SAMPLE_RATE,
            transcription_options=policy,
        )
        segments = finish_segments(
            segments(), options, self.timestamp_begin, policy, first_info.language
        )
        return segments, info

    def _transcribe_block(
        self,
        audio: np.ndarray,
        options: TranscribeOptions,
        policy: DecodingPolicy,
        language: str | None,
        prompt: str | None,
    ):
        kwargs = dict(
            language=language,
            task=options.task,
            beam_size=options.beam_size,
            temperature=list(policy.temperature),
            compression_ratio_threshold=policy.compression_ratio_threshold,
            log_prob_threshold=policy.log_prob_threshold,
            no_speech_threshold=policy.no_speech_threshold if policy.hallucination_guard else None,
            condition_on_previous_text=policy.condition_on_previous_text,
            prompt_reset_on_temperature=policy.prompt_reset_on_temperature,
            without_timestamps=not options.timestamps,
            word_timestamps=options.word_timestamps,
            initial_prompt=prompt,
            hotwords=policy.hotwords,
            vad_filter=options.vad_filter,
            **options.extra,
        )
        if options.batch_size <= 1:
            return self.model.transcribe(audio, **kwargs)
        if not options.vad_filter and len(audio) > WINDOW_SAMPLES:
            # without VAD, batch back-to-back windows cut at pauses
            kwargs["clip_timestamps"] = [
                {"start": start / SAMPLE_RATE, "end": end / SAMPLE_RATE}
                for start, end in quiet_windows(audio)
            ]
        return self.batched.transcribe(audio, batch_size=options.batch_size, **kwargs)


@contextmanager
def _ctranslate2_log_level(level: int) -> Iterator[None]:
    """CTranslate2's own log level for the block: loading a float16 model on a CPU warns on
    every run that it computes in float32, which is the expected and only choice there."""
    import ctranslate2

    previous = ctranslate2.get_log_level()
    ctranslate2.set_log_level(level)
    try:
        yield
    finally:
        ctranslate2.set_log_level(previous)


def _segment(raw, offset: float, limit: float) -> Segment:
    """Our Segment from faster-whisper's, ``offset`` seconds later; times past the end of the
    audio (``limit``), which the model sometimes predicts, are clipped to it."""

    def time(seconds: float) -> float:
        return round(min(offset + seconds, limit), 3)

    words = tuple(
        Word(
            start=time(w.start),
            end=time(w.end),
            word=w.word,
            probability=float(w.probability),
        )
        for w in raw.words or ()
    )
    return Segment(
        start=time(raw.start),
        end=time(raw.end),
        text=raw.text.strip(),
        words=words,
        avg_logprob=float(raw.avg_logprob),
        no_speech_prob=float(raw.no_speech_prob),
        compression_ratio=float(raw.compression_ratio),
        tokens=tuple(raw.tokens),
    )
