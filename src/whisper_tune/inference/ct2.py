"""The CTranslate2 engine: faster-whisper's ``WhisperModel`` (batched when asked)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from whisper_tune.audio import SAMPLE_RATE
from whisper_tune.audio_context import FULL, ContextRule
from whisper_tune.errors import ModelError
from whisper_tune.inference.chunks import (
    WINDOW_SAMPLES,
    content_frames,
    group_by_context,
    quiet_windows,
    until_cancelled,
)
from whisper_tune.inference.ct2_features import SlicedFeatureExtractor
from whisper_tune.inference.policy import DecodingPolicy
from whisper_tune.inference.postprocess import finish_segments
from whisper_tune.inference.types import Segment, TranscribeOptions, TranscriptionInfo, Word
from whisper_tune.languages import check_task, language_code

_MAX_INITIAL_TIMESTAMP_INDEX = 50  # faster-whisper's max_initial_timestamp 1.0 s / 0.02 s


class CT2Transcriber:
    """A :class:`~whisper_tune.inference.types.Transcriber` over a CTranslate2 model dir
    (checked by :func:`whisper_tune.models.resolve_ct2_model`: it holds ``tokenizer.json``, so
    faster-whisper never reaches for the hub).

    ``audio_context`` other than 30 s windows (:mod:`whisper_tune.audio_context`): every
    encoder pass gets only the frames its windows fill (rounded up as the rule says) instead
    of the zero padding to 3000 frames that faster-whisper adds; a full window stays full.
    """

    engine = "ct2"

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "cpu",
        compute_type: str = "default",
        num_workers: int = 1,
        cpu_threads: int = 0,
        audio_context: ContextRule = FULL,
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
        self.compute_type = self.model.model.compute_type  # what "default" resolved to
        self.model.feature_extractor = SlicedFeatureExtractor(**self.model.feat_kwargs)
        self.audio_context = audio_context
        self._full_window = threading.local()  # set: this thread encodes 30 s windows
        if audio_context != FULL:
            _encode_own_length(self.model, audio_context, self._full_window)
        self.batched = BatchedInferencePipeline(self.model)
        self.timestamp_begin = self.model.hf_tokenizer.token_to_id("<|notimestamps|>") + 1

    @property
    def is_multilingual(self) -> bool:
        return self.model.model.is_multilingual

    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Decode ``audio`` in one piece, as faster-whisper does (the same windows and
        previous-text prompts; its features computed a slice at a time, so memory stays
        flat); segments are decoded lazily as the iterator is consumed."""
        check_task(options.task)
        policy = options.policy()
        if options.batch_size > 1:
            # faster-whisper's batched pipeline decodes at the first temperature only and
            # without previous text
            policy = dataclasses.replace(
                policy, temperature=policy.temperature[:1], condition_on_previous_text=False
            )
        language = language_code(options.language)
        if self.audio_context != FULL and len(audio) <= WINDOW_SAMPLES:
            raw_segments, first_info = self._own_length_first(audio, options, policy, language)
        else:
            raw_segments, first_info = self._transcribe_block(
                audio, options, policy, language, policy.initial_prompt
            )
        duration = len(audio) / SAMPLE_RATE

        def segments() -> Iterator[Segment]:
            for raw in until_cancelled(raw_segments, options.cancel):
                yield _segment(raw, duration)

        info = TranscriptionInfo(
            language=first_info.language,
            language_probability=float(first_info.language_probability),
            duration=duration,
            transcription_options=policy,
        )
        segments = finish_segments(
            segments(), options, self.timestamp_begin, policy, first_info.language
        )
        return segments, info

    def _own_length_first(
        self, audio: np.ndarray, options: TranscribeOptions, policy, language: str | None
    ) -> tuple[list, object]:
        """One window encoded at its own length, at the first temperature; decoded again in a
        full 30 s window, with the whole temperature fallback, when its text fails the
        compression-ratio or log-probability threshold (and is not silence). A model tuned
        for short contexts is right on clean speech, and a clip it is unsure of is better
        served by the window it was pretrained on than by sampling at higher temperatures
        (which, on a short context, loops: 13 s for a 1.6 s clip, bench §6)."""
        first = dataclasses.replace(policy, temperature=policy.temperature[:1])
        raw, info = self._transcribe_block(audio, options, first, language, policy.initial_prompt)
        segments = list(until_cancelled(raw, options.cancel))
        unsure = any(
            policy.fails(s.avg_logprob, s.compression_ratio)
            and not policy.drops_as_silence(s.no_speech_prob, s.avg_logprob)
            for s in segments
        )
        if not unsure or len(policy.temperature) == 1:
            return segments, info
        self._full_window.active = True
        try:
            raw, info = self._transcribe_block(
                audio, options, policy, language, policy.initial_prompt
            )
            return list(until_cancelled(raw, options.cancel)), info
        finally:
            self._full_window.active = False

    def transcribe_batch(
        self, audios: Sequence[np.ndarray], options: TranscribeOptions
    ) -> list[tuple[tuple[Segment, ...], TranscriptionInfo]]:
        """Decode several clips of at most one window (30 s) each, from different files, in
        one feature pass, one encoder pass and one ``generate`` call; one result per clip, in
        order, the same as :meth:`transcribe` gives each alone on clean speech.

        Each clip's language is detected from its own window when ``options.language`` is not
        given. A clip whose text fails the compression-ratio or log-probability threshold (and
        is not silence) is decoded again alone by :meth:`transcribe`, with its temperature
        fallback, as is a clip whose timestamps leave audio undecoded. Word timestamps, VAD,
        ``options.extra`` and a first temperature above 0 are decoded alone too.
        """
        check_task(options.task)
        policy = options.policy()
        alone = dataclasses.replace(options, batch_size=1)  # one window: sequential decoding
        if not can_batch(options, policy) or any(len(a) > WINDOW_SAMPLES for a in audios):
            return [_collect(*self.transcribe(audio, alone)) for audio in audios]
        groups = group_by_context([len(a) for a in audios], self.audio_context)
        if len(groups) > 1:  # clips of similar length share an encoder context
            decoded: dict[int, tuple] = {}
            for group in groups:
                found = self._decode_batch([audios[i] for i in group], options, policy, alone)
                decoded.update(zip(group, found, strict=True))
            return [decoded[i] for i in range(len(audios))]
        return self._decode_batch(audios, options, policy, alone)

    def _decode_batch(
        self,
        audios: Sequence[np.ndarray],
        options: TranscribeOptions,
        policy: DecodingPolicy,
        alone: TranscribeOptions,
    ) -> list[tuple[tuple[Segment, ...], TranscriptionInfo]]:
        """:meth:`transcribe_batch` for clips that share one encoder pass."""
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        model = self.model
        windows = [_window_features(model, audio) for audio in audios]
        encoded = model.encode(np.stack([features for features, _ in windows]))
        languages = self._languages(encoded, options.language)
        tokenizers = [
            Tokenizer(model.hf_tokenizer, self.is_multilingual, options.task, language)
            for language, _ in languages
        ]
        prompt = (
            tokenizers[0].encode(" " + policy.initial_prompt.strip())
            if policy.initial_prompt
            else []
        )
        prompts = [
            model.get_prompt(
                tokenizer,
                prompt,
                without_timestamps=not options.timestamps,
                hotwords=policy.hotwords,
            )
            for tokenizer in tokenizers
        ]
        results = model.model.generate(
            encoded,
            prompts,
            beam_size=options.beam_size,
            max_length=model.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_tokens=get_suppressed_tokens(tokenizers[0], [-1]),
            max_initial_timestamp_index=_MAX_INITIAL_TIMESTAMP_INDEX,
        )
        decoded = []
        for audio, (_, frames), tokenizer, result, (_, probability) in zip(
            audios, windows, tokenizers, results, languages, strict=True
        ):
            segments = self._window_segments(audio, frames, tokenizer, result, options, policy)
            if segments is None:  # re-decoded alone
                decoded.append(_collect(*self.transcribe(audio, alone)))
                continue
            info = TranscriptionInfo(
                language=tokenizer.language_code,
                language_probability=probability,
                duration=len(audio) / SAMPLE_RATE,
                transcription_options=policy,
            )
            finished = finish_segments(
                segments, options, self.timestamp_begin, policy, info.language
            )
            decoded.append((tuple(finished), info))
        return decoded

    def _languages(self, encoded, language: str | None) -> list[tuple[str, float]]:
        """Each window's language and its probability: the one asked for (probability 1), "en"
        for an English-only model, else the model's most likely language for the window."""
        batch = encoded.shape[0]
        if language or not self.is_multilingual:
            return [(language_code(language) or "en", 1.0)] * batch
        return [
            (token[2:-2], float(probability))
            for (token, probability), *_ in self.model.model.detect_language(encoded)
        ]

    def _window_segments(
        self,
        audio: np.ndarray,
        frames: int,
        tokenizer,
        result,
        options: TranscribeOptions,
        policy: DecodingPolicy,
    ) -> list[Segment] | None:
        """The segments of one batched window (``frames`` of features long), as
        faster-whisper's ``generate_segments`` makes them at the first temperature; None when
        the window must be decoded again alone."""
        from faster_whisper.transcribe import get_compression_ratio

        tokens = result.sequences_ids[0]
        cumulative = result.scores[0] * len(tokens)  # length penalty 1
        avg_logprob = cumulative / (len(tokens) + 1)
        text = tokenizer.decode(tokens).strip()
        ratio = get_compression_ratio(text)
        silence = policy.drops_as_silence(result.no_speech_prob, avg_logprob)
        if policy.fails(avg_logprob, ratio) and not silence and len(policy.temperature) > 1:
            return None
        if silence:
            return []
        duration = len(audio) / SAMPLE_RATE
        pieces, seek, _ = self.model._split_segments_by_timestamps(
            tokenizer=tokenizer,
            tokens=tokens,
            time_offset=0.0,
            segment_size=frames,
            segment_duration=frames * self.model.feature_extractor.time_per_frame,
            seek=0,
        )
        if seek < frames:  # faster-whisper would decode the rest as another window
            return None
        scores = dict(
            avg_logprob=float(avg_logprob),
            no_speech_prob=float(result.no_speech_prob),
            compression_ratio=float(ratio),
        )
        return [
            Segment(
                start=round(min(piece["start"], duration), 3),
                end=round(min(piece["end"], duration), 3),
                text=tokenizer.decode(piece["tokens"]).strip(),
                tokens=tuple(piece["tokens"]),
                **scores,
            )
            for piece in pieces
            if piece["start"] != piece["end"] and tokenizer.decode(piece["tokens"]).strip()
        ]

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


def can_batch(options: TranscribeOptions, policy: DecodingPolicy) -> bool:
    """Whether clips decoded with ``options`` can share one ``generate`` call: not with word
    timestamps, VAD, faster-whisper arguments of its own or a first temperature above 0."""
    return not (
        options.word_timestamps or options.vad_filter or options.extra or policy.temperature[0]
    )


def _window_features(model, audio: np.ndarray) -> tuple[np.ndarray, int]:
    """One clip's log-mel window as faster-whisper's ``transcribe`` makes it (the clip's
    features, zero-padded to 30 s), and how many frames of it are the clip's."""
    from faster_whisper.transcribe import pad_or_trim

    features = model.feature_extractor(audio)
    frames = min(model.feature_extractor.nb_max_frames, features.shape[-1] - 1)
    return pad_or_trim(features[:, :frames]), frames


def _encode_own_length(model, rule: ContextRule, full_window: threading.local) -> None:
    """Make faster-whisper's ``model.encode`` (which every window, language detection and
    batch goes through, zero-padded to 3000 frames) cut the padding down to ``rule``'s frames
    for the longest window of the batch, unless ``full_window.active`` in this thread."""
    encode = model.encode

    def encode_own_length(features: np.ndarray):
        if getattr(full_window, "active", False):
            return encode(features)
        frames = rule.frames(content_frames(features))
        return encode(np.ascontiguousarray(features[..., :frames]))

    model.encode = encode_own_length


def _collect(segments: Iterator[Segment], info: TranscriptionInfo):
    return tuple(segments), info


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


def _segment(raw, limit: float) -> Segment:
    """Our Segment from faster-whisper's; times past the end of the audio (``limit``), which
    the model sometimes predicts, are clipped to it."""

    def time(seconds: float) -> float:
        return round(min(seconds, limit), 3)

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
