"""The transformers engine: ``WhisperForConditionalGeneration`` decoding 30-second windows.

Long audio is decoded window by window, each window starting where the last complete
segment ended (openai/whisper's timestamp seeking), so segments stream out as they are
decoded and memory does not grow with the audio length. With ``batch_size > 1``,
``vad_filter`` or an assistant model the audio is cut up front (windows cut at pauses, or
speech spans) and decoded in batches. Each window gets openai/whisper's temperature
fallback and no-speech check, under the options' :class:`DecodingPolicy` (a window that
loops is decoded again too), and is conditioned on the text decoded before it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whisper_tune.audio import SAMPLE_RATE
from whisper_tune.audio_context import FULL, ContextRule, frames_of
from whisper_tune.errors import ModelError
from whisper_tune.inference.alignment import align_words, place_words
from whisper_tune.inference.chunks import (
    WINDOW_SAMPLES,
    Piece,
    cancelled,
    quiet_windows,
    speech_spans,
    split_by_timestamps,
)
from whisper_tune.inference.guards import compression_ratio, degenerate_reason
from whisper_tune.inference.policy import DecodingPolicy
from whisper_tune.inference.postprocess import finish_segments
from whisper_tune.inference.types import Segment, TranscribeOptions, TranscriptionInfo
from whisper_tune.languages import check_task, language_code
from whisper_tune.models import encode_audio, load_processor, load_whisper
from whisper_tune.resolve import resolve_hf_model

log = logging.getLogger("whisper_tune.inference")

MIN_WINDOW_SAMPLES = SAMPLE_RATE // 20  # a remainder shorter than 50 ms is not decoded

_TORCH_DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class _Decoded:
    tokens: list[int]
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float
    hidden: Any = field(default=None, repr=False, compare=False)  # the window's encoder output

    def needs_fallback(self, policy: DecodingPolicy) -> bool:
        """Decode again hotter: the text compresses too well, is unlikely or (guarded) loops."""
        if policy.is_silence(self.no_speech_prob, self.avg_logprob):
            return False
        return policy.fails(self.avg_logprob, self.compression_ratio) or (
            policy.hallucination_guard and degenerate_reason(self.text, policy.guard)
        )


class _Prompt:
    """Each window's decoder prompt: the hotwords, then the initial prompt and, when
    conditioning on previous text, the text tokens decoded so far (openai/whisper's rule:
    the latest half-context of tokens, reset after a window decoded hotter than
    ``prompt_reset_on_temperature``)."""

    def __init__(self, tokenize, policy: DecodingPolicy, max_tokens: int) -> None:
        self.policy = policy
        self.hotwords = tokenize(policy.hotwords)
        self.history = tokenize(policy.initial_prompt)
        self.budget = max(0, max_tokens - len(self.hotwords))

    def tokens(self) -> list[int]:
        return self.hotwords + (self.history[-self.budget :] if self.budget else [])

    def advance(self, text_tokens: list[int], temperature: float) -> None:
        """Record a decoded window's text tokens (or forget the history)."""
        policy = self.policy
        if policy.condition_on_previous_text and temperature <= policy.prompt_reset_on_temperature:
            self.history = self.history + text_tokens
        else:
            self.history = []


class HFTranscriber:
    """A :class:`~whisper_tune.inference.types.Transcriber` over a Hugging Face Whisper.

    With an ``audio_context`` other than 30 s windows (:mod:`whisper_tune.audio_context`),
    the encoder gets only the frames a batch's longest window fills, rounded up as the rule
    says (not with an assistant model, which encodes 30 s windows itself).
    """

    engine = "transformers"

    def __init__(
        self,
        reference: str,
        device: str = "cpu",
        compute_type: str = "default",
        cpu_threads: int = 0,
        assistant_reference: str | None = None,
        local_files_only: bool = False,
        audio_context: ContextRule = FULL,
    ) -> None:
        import torch

        if cpu_threads:
            torch.set_num_threads(cpu_threads)
        self.device = torch.device(device if device != "auto" else _auto_device())
        self.dtype = _torch_dtype(compute_type, self.device.type)
        resolved = resolve_hf_model(reference, local_files_only)
        self.processor = load_processor(resolved, local_files_only)
        self.model = self._load(resolved, local_files_only)
        self.assistant = (
            self._load(resolve_hf_model(assistant_reference, local_files_only), local_files_only)
            if assistant_reference
            else None
        )
        config = self.model.generation_config
        no_timestamps = getattr(config, "no_timestamps_token_id", None)
        if no_timestamps is None:
            raise ModelError(f"{resolved}: its generation_config.json lacks no_timestamps_token_id")
        self.timestamp_begin = no_timestamps + 1
        self.no_speech_id = no_timestamps - 1
        self.sot_id = config.decoder_start_token_id
        self.language_ids = dict(getattr(config, "lang_to_id", None) or {})
        self.is_multilingual = bool(getattr(config, "is_multilingual", False))
        self.audio_context = FULL if self.assistant is not None else audio_context

    def _load(self, resolved: str, local_files_only: bool):
        model = load_whisper(resolved, local_files_only, dtype=self.dtype)
        return model.to(self.device).eval()

    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Decode ``audio``; segments are decoded lazily as the iterator is consumed."""
        check_task(options.task)
        language = language_code(options.language)
        probability = 1.0
        if not self.is_multilingual:
            language = "en"
        elif language is None:
            language, probability = self.detect_language(audio[:WINDOW_SAMPLES])
        if self.assistant is not None and options.timestamps:
            log.warning(
                "speculative decoding in transformers mishandles timestamp tokens; decoding "
                "without timestamps (one segment per window of at most 30 s)"
            )
            options = dataclasses.replace(options, timestamps=False)
        policy = options.policy()
        if options.vad_filter or options.batch_size > 1 or self.assistant is not None:
            if self._batch_size(options) > 1:
                # batched decoding uses the first temperature only and no previous text, as
                # faster-whisper's batched pipeline does
                policy = dataclasses.replace(
                    policy, temperature=policy.temperature[:1], condition_on_previous_text=False
                )
            segments = self._decode_spans(audio, language, options, policy)
        else:
            segments = self._decode_seeking(audio, language, options, policy)
        info = TranscriptionInfo(language, probability, len(audio) / SAMPLE_RATE, policy)
        return finish_segments(segments, options, self.timestamp_begin, policy, language), info

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        """The most likely language code of ``audio`` (first 30 s) and its probability."""
        import torch

        with torch.inference_mode():
            features = self._features([audio], self.audio_context)
            logits = self._first_logits(self._encode(features))[0]
        ids = list(self.language_ids.values())
        probs = logits[ids].float().softmax(-1)
        best = int(probs.argmax())
        return list(self.language_ids)[best].strip("<|>"), float(probs[best])

    def _batch_size(self, options: TranscribeOptions) -> int:
        return 1 if self.assistant is not None else max(1, options.batch_size)

    def _prompt(self, policy: DecodingPolicy) -> _Prompt:
        def tokenize(text: str | None) -> list[int]:
            if not text or not text.strip():
                return []
            tokenizer = self.processor.tokenizer
            return tokenizer(" " + text.strip(), add_special_tokens=False).input_ids

        return _Prompt(tokenize, policy, self.model.config.max_target_positions // 2 - 1)

    def _text_tokens(self, pieces: list[Piece]) -> list[int]:
        eot = self.model.generation_config.eos_token_id
        return [token for piece in pieces for token in piece.tokens if token < eot]

    def _decode_seeking(
        self, audio: np.ndarray, language: str, options: TranscribeOptions, policy: DecodingPolicy
    ) -> Iterator[Segment]:
        seek = 0
        prompt = self._prompt(policy)
        while len(audio) - seek >= MIN_WINDOW_SAMPLES and not cancelled(options.cancel):
            window = audio[seek : seek + WINDOW_SAMPLES]
            (decoded,) = self._decode([window], language, options, prompt.tokens(), policy)
            duration = len(window) / SAMPLE_RATE
            if policy.drops_as_silence(decoded.no_speech_prob, decoded.avg_logprob):
                prompt.advance([], decoded.temperature)
                seek += len(window)
                continue
            pieces, done = self._pieces(decoded, options)
            closed = [piece for piece in pieces if piece.end is not None]
            if closed and not done and pieces[-1].end is None:
                pieces = closed  # drop the unfinished piece; decode it again in the next window
            prompt.advance(self._text_tokens(pieces), decoded.temperature)
            yield from self._segments(
                pieces, decoded, seek / SAMPLE_RATE, duration, language, options
            )
            resume = pieces[-1].end if pieces and not done else None
            seek += int(round(resume * SAMPLE_RATE)) if resume else len(window)

    def _decode_spans(
        self, audio: np.ndarray, language: str, options: TranscribeOptions, policy: DecodingPolicy
    ) -> Iterator[Segment]:
        spans = speech_spans(audio) if options.vad_filter else quiet_windows(audio)
        batch_size = self._batch_size(options)
        prompt = self._prompt(policy)
        for i in range(0, len(spans), batch_size):
            if cancelled(options.cancel):
                return
            batch = spans[i : i + batch_size]
            windows = [audio[start:end] for start, end in batch]
            decoded = self._decode(windows, language, options, prompt.tokens(), policy)
            for (start, end), result in zip(batch, decoded, strict=True):
                if policy.drops_as_silence(result.no_speech_prob, result.avg_logprob):
                    prompt.advance([], result.temperature)
                    continue
                pieces, _ = self._pieces(result, options)
                prompt.advance(self._text_tokens(pieces), result.temperature)
                duration = (end - start) / SAMPLE_RATE
                yield from self._segments(
                    pieces, result, start / SAMPLE_RATE, duration, language, options
                )

    def _pieces(self, decoded: _Decoded, options: TranscribeOptions) -> tuple[list[Piece], bool]:
        if not options.timestamps:
            return [Piece(0.0, None, tuple(decoded.tokens))], True
        return split_by_timestamps(decoded.tokens, self.timestamp_begin)

    def _segments(
        self,
        pieces: list[Piece],
        decoded: _Decoded,
        offset: float,
        duration: float,
        language: str,
        options: TranscribeOptions,
    ) -> Iterator[Segment]:
        words = [[] for _ in pieces]
        if options.word_timestamps:
            words = align_words(
                self.model,
                self.processor.tokenizer,
                decoded.hidden,
                self._alignment_prompt(language, options.task),
                [piece.tokens for piece in pieces],
                duration,
                language,
            )
        for piece, piece_words in zip(pieces, words, strict=True):
            text = self.processor.tokenizer.decode(list(piece.tokens), skip_special_tokens=True)
            end = duration if piece.end is None else min(piece.end, duration)
            if not text.strip() or end <= piece.start:
                continue
            start, end = round(offset + piece.start, 3), round(offset + end, 3)
            yield Segment(
                start=start,
                end=end,
                text=text.strip(),
                words=place_words(piece_words, offset, start, end),
                avg_logprob=decoded.avg_logprob,
                no_speech_prob=decoded.no_speech_prob,
                compression_ratio=decoded.compression_ratio,
                tokens=piece.tokens,
            )

    def _decode(
        self,
        windows: list[np.ndarray],
        language: str,
        options: TranscribeOptions,
        prompt: list[int],
        policy: DecodingPolicy,
    ) -> list[_Decoded]:
        """Decode up to ``batch_size`` windows, re-decoding at higher temperatures the ones
        whose text looks degenerate. With a short audio context, a window whose text fails at
        the first temperature is decoded again at that temperature in a full 30 s window
        before any hotter one (sampling on a short context is where a tuned model loops)."""
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        first, *hotter = policy.temperature
        schedule = [(first, self.audio_context)]
        if hotter and self.audio_context != FULL:
            schedule.append((first, FULL))
        schedule += [(t, FULL) for t in hotter]
        with torch.inference_mode():
            results: list[_Decoded | None] = [None] * len(windows)
            pending = list(range(len(windows)))
            by_rule: dict[ContextRule, Any] = {}
            encoded_frames = 0
            for t, rule in schedule:
                if rule not in by_rule:
                    by_rule[rule] = self._features(windows, rule)
                features = by_rule[rule]
                if features.shape[-1] != encoded_frames:  # the first pass, or a longer context
                    encoded_frames = features.shape[-1]
                    hidden = self._encode(features)
                    no_speech = self._first_logits(hidden).float().softmax(-1)[:, self.no_speech_id]
                # the assistant encodes the features itself; otherwise reuse the encoding
                inputs = (
                    {"input_features": features[pending]}
                    if self.assistant is not None
                    else {"encoder_outputs": BaseModelOutput(last_hidden_state=hidden[pending])}
                )
                out = self.model.generate(
                    **inputs, **self._generate_kwargs(language, options, prompt, t)
                )
                for row, index in enumerate(pending):
                    results[index] = self._result(
                        out, row, t, float(no_speech[index]), hidden[index]
                    )
                pending = [i for i in pending if results[i].needs_fallback(policy)]
                if not pending:
                    break
        return results

    def _generate_kwargs(
        self, language: str, options: TranscribeOptions, prompt: list[int], temperature: float
    ) -> dict:
        import torch

        kwargs = dict(
            return_timestamps=options.timestamps,
            force_unique_generate_call=True,  # one pass per window: seeking is done here
            return_dict_in_generate=True,
            output_scores=True,
            num_beams=1 if temperature > 0 or self.assistant is not None else options.beam_size,
            do_sample=temperature > 0,
        )
        if temperature > 0:
            kwargs["temperature"] = temperature
        if self.is_multilingual:
            kwargs.update(language=language, task=options.task)
        if prompt:
            start_of_prev = self.processor.tokenizer.convert_tokens_to_ids("<|startofprev|>")
            kwargs["prompt_ids"] = torch.tensor([start_of_prev, *prompt], device=self.device)
        if self.assistant is not None:
            kwargs["assistant_model"] = self.assistant
        if options.cancel is not None:  # checked after every token: a window stops mid-decode
            cancel = options.cancel
            kwargs["stopping_criteria"] = [
                lambda input_ids, scores, **_: torch.full(
                    (input_ids.shape[0],), cancel.is_set(), device=input_ids.device
                )
            ]
        return kwargs

    def _result(self, out, row: int, temperature: float, no_speech_prob: float, hidden) -> _Decoded:
        import torch

        eot = self.model.generation_config.eos_token_id
        sequence = out.sequences[row].tolist()
        # skip the decoder prompt: [previous text…] <|startoftranscript|> then special tokens
        # (language, task, no-timestamps), all of which lie between eot and the timestamps
        begin = sequence.index(self.sot_id) + 1
        while begin < len(sequence) and eot < sequence[begin] < self.timestamp_begin:
            begin += 1
        sequence = sequence[begin:]
        length = sequence.index(eot) + 1 if eot in sequence else len(sequence)
        if getattr(out, "sequences_scores", None) is not None:
            avg_logprob = float(out.sequences_scores[row])
        else:
            scores = torch.stack([step[row] for step in out.scores[:length]]).float()
            if temperature > 0:
                scores = scores * temperature  # undo the temperature warper
            picked = scores.log_softmax(-1).gather(-1, torch.tensor(sequence[:length])[:, None])
            avg_logprob = float(picked.mean())
        tokens = [t for t in sequence[:length] if t != eot]
        text = self.processor.tokenizer.decode(tokens, skip_special_tokens=True)
        return _Decoded(
            tokens, text, avg_logprob, no_speech_prob, compression_ratio(text), temperature, hidden
        )

    def _alignment_prompt(self, language: str, task: str) -> list[int]:
        """The decoder prompt for word alignment: start of transcript, language and task
        (multilingual models), no timestamps."""
        config = self.model.generation_config
        prompt = [self.sot_id]
        if self.is_multilingual:
            prompt += [self.language_ids[f"<|{language}|>"], config.task_to_id[task]]
        return [*prompt, self.timestamp_begin - 1]

    def _features(self, windows: list[np.ndarray], rule: ContextRule):
        """The windows' log-mel features, padded to 30 s and cut to ``rule``'s context."""
        features = self.processor.feature_extractor(
            windows, sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features
        content = frames_of(max(len(window) for window in windows))
        features = features[..., : rule.frames(content)]
        return features.to(self.device, self.dtype)

    def _encode(self, features):
        return encode_audio(self.model.get_encoder(), features).last_hidden_state

    def _first_logits(self, hidden):
        """Decoder logits after the start-of-transcript token (no-speech and language probs)."""
        import torch

        start = torch.full((hidden.shape[0], 1), self.sot_id, device=self.device)
        return self.model(encoder_outputs=(hidden,), decoder_input_ids=start).logits[:, -1]


def _auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_dtype(compute_type: str, device_type: str):
    import torch

    if compute_type == "default":
        return torch.float16 if device_type == "cuda" else torch.float32
    if compute_type not in _TORCH_DTYPES:
        log.warning(
            "compute type %r needs the ct2 engine; the transformers engine uses float32",
            compute_type,
        )
        return torch.float32
    return getattr(torch, compute_type)
