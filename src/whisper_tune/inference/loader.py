"""Pick an engine for a model reference and load it behind the ``Transcriber`` interface."""

from __future__ import annotations

from pathlib import Path

from whisper_tune.errors import ModelError
from whisper_tune.inference.types import Transcriber
from whisper_tune.models import is_ct2_dir, is_hf_dir, resolve_ct2_model

ENGINES = ("auto", "ct2", "transformers")


def choose_engine(model_path: str, engine: str = "auto") -> str:
    """``ct2`` or ``transformers``: the one asked for, else the one the model dir needs."""
    if engine not in ENGINES:
        raise ModelError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if engine != "auto":
        return engine
    path = Path(model_path).expanduser()
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


def load_transcriber(
    model_path: str = "tiny.en",
    engine: str = "auto",
    device: str = "cpu",
    compute_type: str = "default",
    use_int8: bool = False,
    num_workers: int = 1,
    cpu_threads: int = 0,
    local_files_only: bool = False,
    assistant_model_path: str | None = None,
) -> Transcriber:
    """Load ``model_path`` (a model dir or a bundled name such as "tiny.en") for transcription.

    ``engine="auto"`` uses CTranslate2 for a CTranslate2 dir, a bundled name or a
    faster-whisper model id, and transformers for a Hugging Face dir (name the engine for a
    Hugging Face hub id). ``use_int8`` is the seed's shortcut for
    ``compute_type="int8"`` (``int8_float16`` on a GPU). ``assistant_model_path`` (a smaller
    Hugging Face Whisper with the same tokenizer) turns on speculative decoding in the
    transformers engine.
    """
    if use_int8 and compute_type == "default":
        compute_type = "int8_float16" if device == "cuda" else "int8"
    chosen = choose_engine(model_path, engine)
    if chosen == "transformers":
        from whisper_tune.inference.hf import HFTranscriber

        return HFTranscriber(
            model_path,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            assistant_reference=assistant_model_path,
            local_files_only=local_files_only,
        )
    if assistant_model_path:
        raise ModelError("an assistant model needs the transformers engine (--engine transformers)")
    from whisper_tune.inference.ct2 import CT2Transcriber

    return CT2Transcriber(
        resolve_ct2_model(model_path, local_files_only),
        device=device,
        compute_type=compute_type,
        num_workers=num_workers,
        cpu_threads=cpu_threads,
    )
