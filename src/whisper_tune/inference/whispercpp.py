"""The whisper.cpp engine: a GGML model file run by pywhispercpp (whisper.cpp's own library).

The file Android and desktop users run, behind the same :class:`Transcriber` interface as the
other engines. whisper.cpp cuts long audio into windows itself (with its own temperature
fallback, conditioned on the previous text unless told not to); the hallucination guard and
the text options run on its segments as on every engine's.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from whisper_tune.audio import SAMPLE_RATE
from whisper_tune.audio_context import FULL, ContextRule, frames_of
from whisper_tune.errors import ModelError, WhisperTuneError
from whisper_tune.inference.chunks import WINDOW_SAMPLES
from whisper_tune.inference.ggml_format import F32_HINT, check_ggml_file
from whisper_tune.inference.guards import compression_ratio
from whisper_tune.inference.postprocess import finish_segments
from whisper_tune.inference.types import Segment, TranscribeOptions, TranscriptionInfo
from whisper_tune.languages import check_task, language_code

log = logging.getLogger("whisper_tune.inference")


class WhisperCppTranscriber:
    """A :class:`~whisper_tune.inference.types.Transcriber` over a whisper.cpp GGML file.

    The file is checked first (GGML magic, complete tensor directory, not f32, which
    whisper.cpp's CPU backend cannot run), so a bad file is an error, not a crash.
    One whisper.cpp context decodes one audio at a time. With an ``audio_context`` other than
    30 s windows, a clip of at most 30 s is encoded at its own length (whisper.cpp's
    ``audio_ctx``, which would cut every window of longer audio, so those keep 30 s), at the
    first temperature only; as in the CTranslate2 engine, a text that fails the thresholds is
    decoded again in a 30 s window with the temperature fallback, not sampled on the short
    context.
    """

    engine = "whispercpp"

    def __init__(
        self, model_file: str | Path, cpu_threads: int = 0, audio_context: ContextRule = FULL
    ) -> None:
        if importlib.util.find_spec("pywhispercpp") is None:
            raise WhisperTuneError(
                "the whisper.cpp engine needs pywhispercpp: pip install 'whisper-tune[ggml]'"
            )
        from pywhispercpp.model import Model

        self.model_file = Path(model_file).expanduser()
        header = check_ggml_file(self.model_file)
        if header.ftype == 0:
            raise ModelError(f"cannot run {self.model_file}{F32_HINT}")
        self.is_multilingual = header.multilingual
        self.audio_context = audio_context
        self.model = Model(
            str(self.model_file),
            redirect_whispercpp_logs_to=None,
            n_threads=cpu_threads or min(4, os.cpu_count() or 1),
            print_progress=False,
            print_realtime=False,
        )
        self._lock = threading.Lock()

    def _audio_ctx(self, samples: int) -> int:
        """whisper.cpp's ``audio_ctx`` for a clip of ``samples``: 0 (30 s) unless short."""
        if self.audio_context == FULL or samples > WINDOW_SAMPLES:
            return 0
        return self.audio_context.positions(frames_of(samples))

    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Decode ``audio`` (whole, when the segments are first asked for).

        whisper.cpp has no hotwords: they join the initial prompt, carried to every window.
        Word timestamps and the VAD filter are not offered by this engine (a warning says so).
        """
        check_task(options.task)
        for name in ("word_timestamps", "vad_filter"):
            if getattr(options, name):
                log.warning("the whisper.cpp engine ignores %s", name)
        policy = options.policy()
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        language, probability = self._language(audio, language_code(options.language))
        prompt = " ".join(p for p in (policy.hotwords, policy.initial_prompt) if p)
        temperatures = policy.temperature
        params = dict(
            language=language,
            translate=options.task == "translate",
            no_timestamps=not options.timestamps,
            no_context=not policy.condition_on_previous_text,
            initial_prompt=prompt,  # "" for none (the setting persists between calls)
            carry_initial_prompt=bool(policy.hotwords),
            temperature=temperatures[0],
            temperature_inc=temperatures[1] - temperatures[0] if len(temperatures) > 1 else 0.0,
            # whisper.cpp's stand-in for the compression-ratio check (same default, 2.4)
            entropy_thold=policy.compression_ratio_threshold,
            logprob_thold=policy.log_prob_threshold,
            no_speech_thold=policy.no_speech_threshold,
            suppress_nst=True,  # as Hugging Face's and faster-whisper's suppress_tokens
            strategy=_strategy(options.beam_size),
            beam_search={"beam_size": max(1, options.beam_size), "patience": -1.0},
            audio_ctx=self._audio_ctx(len(audio)),  # 0: 30 s (the setting persists too)
        )
        cancel = options.cancel

        def segments() -> Iterator[Segment]:
            if cancel is not None and cancel.is_set():
                return
            if params["audio_ctx"] and len(temperatures) > 1:
                raw = self._own_length_first(audio, params, policy, cancel)
            else:
                raw = self._decode(audio, params, cancel)
            limit = len(audio) / SAMPLE_RATE
            for item in raw:
                yield _segment(item, limit)

        info = TranscriptionInfo(
            language=language,
            language_probability=probability,
            duration=len(audio) / SAMPLE_RATE,
            transcription_options=policy,
        )
        # whisper.cpp times its segments itself: no timestamp tokens for the watch to count
        untimed = dataclasses.replace(options, timestamps=False)
        return finish_segments(segments(), untimed, 0, policy, language), info

    def _decode(self, audio: np.ndarray, params: dict, cancel: threading.Event | None) -> list:
        """pywhispercpp's segments of ``audio`` decoded with ``params``."""
        with self._lock:
            return self.model.transcribe(
                audio,
                abort_callback=(lambda: cancel.is_set()) if cancel is not None else None,
                extract_probability=True,
                **params,
            )

    def _own_length_first(
        self, audio: np.ndarray, params: dict, policy, cancel: threading.Event | None
    ) -> list:
        """The clip at its own context at the first temperature; decoded again in a 30 s
        window with the whole temperature fallback when a segment's text fails the
        compression-ratio or log-probability threshold (whisper.cpp gives no no-speech
        probability, so only text is judged)."""
        first = self._decode(audio, params | {"temperature_inc": 0.0}, cancel)
        unsure = any(
            policy.fails(_avg_logprob(item), compression_ratio(item.text))
            for item in first
            if item.text.strip()
        )
        if not unsure:
            return first
        return self._decode(audio, params | {"audio_ctx": 0}, cancel)

    def _language(self, audio: np.ndarray, asked: str | None) -> tuple[str, float]:
        """The language to decode in: asked for, English for an English-only model, else
        the one whisper.cpp detects in the first 30 s."""
        if not self.is_multilingual:
            return "en", 1.0
        if asked:
            return asked, 1.0
        with self._lock:
            (detected, probability), _ = self.model.auto_detect_language(audio)
        return detected, float(probability)


def _strategy(beam_size: int):
    import _pywhispercpp as pw

    strategies = pw.whisper_sampling_strategy
    return (
        strategies.WHISPER_SAMPLING_BEAM_SEARCH
        if beam_size > 1
        else strategies.WHISPER_SAMPLING_GREEDY
    )


def _avg_logprob(raw) -> float:
    """The mean token log-probability of a pywhispercpp segment (its probability is their
    geometric mean)."""
    probability = float(raw.probability)
    return math.log(probability) if probability > 0 else 0.0


def _segment(raw, limit: float) -> Segment:
    """Our Segment from pywhispercpp's (times in 10 ms steps, clipped to the audio)."""
    return Segment(
        start=round(min(raw.t0 / 100, limit), 3),
        end=round(min(raw.t1 / 100, limit), 3),
        text=raw.text.strip(),
        avg_logprob=_avg_logprob(raw),
    )
