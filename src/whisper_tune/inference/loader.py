"""Pick an engine for a model reference and load it behind the ``Transcriber`` interface."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from whisper_tune.audio_context import ContextRule, context_rule, read_marker
from whisper_tune.engine_settings import ENGINES, EngineSettings
from whisper_tune.errors import ModelError
from whisper_tune.inference.ggml_format import is_ggml_file
from whisper_tune.inference.types import Transcriber
from whisper_tune.models import is_ct2_dir, is_hf_dir, resolve_ct2_model


def choose_engine(model_path: str, engine: str = "auto") -> str:
    """``ct2``, ``transformers`` or ``whispercpp``: the one asked for, else the one the model
    dir or file needs."""
    if engine not in ENGINES:
        raise ModelError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if engine != "auto":
        return engine
    path = Path(model_path).expanduser()
    if path.is_file():
        if is_ggml_file(path):
            return "whispercpp"
        raise ModelError(
            f"{path} is a file but not a whisper.cpp GGML model (no GGML magic); a "
            "CTranslate2 or Hugging Face model is a directory"
        )
    if path.is_dir():
        if is_ct2_dir(path):
            return "ct2"
        if is_hf_dir(path):
            return "transformers"
        raise ModelError(
            f"{path} is neither a CTranslate2 model (model.bin) nor a Hugging Face Whisper "
            "model (config.json with model_type whisper and weights)"
        )
    return "ct2"


def load_transcriber(settings: EngineSettings | str, **changes) -> Transcriber:
    """Load a model for transcription as ``settings`` say (a model path or bundled name such
    as "tiny.en": the default settings for it); ``changes`` replace single settings.

    ``engine="auto"`` uses CTranslate2 for a CTranslate2 dir, a bundled name or a
    faster-whisper model id, transformers for a Hugging Face dir (name the engine for a
    Hugging Face hub id) and whisper.cpp for a GGML file. The compute type is
    :func:`ct2_compute_type`'s for CTranslate2; the transformers engine's ``default`` is float32
    on a CPU (float16 on a GPU). ``assistant_model_path`` (a smaller Hugging Face Whisper with
    the same tokenizer) turns on speculative decoding in the transformers engine.
    """
    if isinstance(settings, str):
        settings = EngineSettings(settings)
    settings = dataclasses.replace(settings, **changes)
    chosen = choose_engine(settings.model_path, settings.engine)
    if chosen == "transformers":
        from whisper_tune.inference.hf import HFTranscriber

        compute_type = settings.compute_type
        if settings.use_int8 and compute_type == "default":
            compute_type = "int8"  # the engine warns that int8 needs ct2 and uses float32
        return HFTranscriber(
            settings.model_path,
            device=settings.device,
            compute_type=compute_type,
            cpu_threads=settings.cpu_threads,
            assistant_reference=settings.assistant_model_path,
            local_files_only=settings.local_files_only,
            audio_context=_audio_context(settings, settings.model_path),
        )
    if settings.assistant_model_path:
        raise ModelError("an assistant model needs the transformers engine (--engine transformers)")
    if chosen == "whispercpp":
        from whisper_tune.inference.whispercpp import WhisperCppTranscriber

        return WhisperCppTranscriber(
            settings.model_path,
            cpu_threads=settings.cpu_threads,
            audio_context=_audio_context(settings, settings.model_path),
        )
    from whisper_tune.inference.ct2 import CT2Transcriber

    model_dir = resolve_ct2_model(settings.model_path, settings.local_files_only)
    return CT2Transcriber(
        model_dir,
        device=settings.device,
        compute_type=ct2_compute_type(settings),
        num_workers=settings.num_workers,
        cpu_threads=settings.cpu_threads,
        audio_context=_audio_context(settings, model_dir),
    )


def _audio_context(settings: EngineSettings, model_path: str) -> ContextRule:
    """The encoder context rule ``--audio_ctx`` asks for on this model (its marker, if any:
    see :mod:`whisper_tune.audio_context`); a hub id has none."""
    path = Path(model_path).expanduser()
    trained = read_marker(path) if path.exists() else None
    return context_rule(settings.audio_ctx, trained, str(model_path))


def ct2_compute_type(settings: EngineSettings) -> str:
    """The CTranslate2 compute type ``settings`` ask for: ``--compute_type`` when given, else
    int8 on a CPU (1.6–1.8x faster than float32 and ~190 MiB smaller for tiny.en, see
    docs/benchmarks.md) and float16 on a GPU (``int8_float16`` with the seed's ``--use_int8``)."""
    if settings.compute_type != "default":
        return settings.compute_type
    if settings.device == "cuda":
        return "int8_float16" if settings.use_int8 else "float16"
    return "int8"
