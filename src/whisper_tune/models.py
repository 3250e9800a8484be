"""Model directories and loading: what a Hugging Face or CTranslate2 Whisper dir is, where a
CTranslate2 model lives, and one way to load a Hugging Face model everywhere (training,
merging, evaluation and inference).

A core module: it converts nothing. Turning a bundled name into a Hugging Face directory (an
import-ct2 run the first time) is :mod:`whisper_tune.resolve`, a layer above.
"""

from __future__ import annotations

import json
from pathlib import Path

from whisper_tune import zoo
from whisper_tune.errors import ModelError

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def is_ct2_dir(path: str | Path) -> bool:
    """A CTranslate2 model directory holds ``model.bin`` next to its ``config.json``."""
    return (Path(path) / "model.bin").is_file()


def is_hf_dir(path: str | Path) -> bool:
    """A Hugging Face Whisper directory: ``config.json`` with model_type whisper and weights."""
    directory = Path(path)
    config = directory / "config.json"
    if not config.is_file() or not any((directory / f).is_file() for f in HF_WEIGHT_FILES):
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") == "whisper"
    except (OSError, ValueError):
        return False


CT2_REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")


def resolve_ct2_model(reference: str, local_files_only: bool = False) -> str:
    """Return a CTranslate2 Whisper directory for ``reference``.

    A bundled name ("tiny.en", "base") gives its bundled directory; a local directory must
    hold a complete CTranslate2 model; anything else is a faster-whisper size name ("small")
    or hub id ("Systran/faster-whisper-small"), downloaded unless ``local_files_only``.
    """
    if reference in zoo.BUNDLED_MODELS:
        return str(zoo.bundled_ct2_dir(reference))
    path = Path(reference).expanduser()
    if path.exists():
        if is_hf_dir(path) and not is_ct2_dir(path):
            raise ModelError(
                f"{path} is a Hugging Face model; make a CTranslate2 copy first with "
                f"'whisper-tune convert --model_path {path} --output_dir <dir>'"
            )
        if not path.is_dir():
            raise ModelError(f"{path} is not a model directory")
        missing = [name for name in CT2_REQUIRED_FILES if not (path / name).is_file()]
        if not any((path / f"vocabulary.{ext}").is_file() for ext in ("txt", "json")):
            missing.append("vocabulary.txt")
        if missing:
            raise ModelError(
                f"{path} is not a complete CTranslate2 Whisper model: missing {', '.join(missing)}"
            )
        return str(path)
    if reference.startswith((".", "/", "~")):
        raise ModelError(f"model directory {reference!r} not found")
    from faster_whisper.utils import download_model

    try:
        return download_model(reference, local_files_only=local_files_only)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"model {reference!r} is not a directory, not a bundled model "
            f"({', '.join(zoo.BUNDLED_MODELS)}) and could not be fetched: {_first_line(exc)}"
        ) from None


def load_processor(reference: str, local_files_only: bool = False):
    """The WhisperProcessor (feature extractor + tokenizer) for a resolved reference."""
    from transformers import WhisperProcessor

    try:
        return WhisperProcessor.from_pretrained(reference, local_files_only=local_files_only)
    except OSError as exc:
        raise ModelError(
            f"cannot load the processor of {reference!r}: {_first_line(exc)}"
        ) from None


def load_whisper(reference: str, local_files_only: bool = False, **kwargs):
    """Load ``WhisperForConditionalGeneration`` from a resolved reference."""
    from transformers import WhisperForConditionalGeneration

    try:
        return WhisperForConditionalGeneration.from_pretrained(
            reference, local_files_only=local_files_only, **kwargs
        )
    except OSError as exc:
        raise ModelError(f"cannot load Whisper model {reference!r}: {_first_line(exc)}") from None


def encode_audio(encoder, features):
    """A ``WhisperEncoder``'s output for log-mel ``features`` of any even length up to 3000
    frames: transformers' ``forward`` insists on 3000, so this runs the same layers with the
    positional embeddings cut to the input (``audio_ctx``, as whisper.cpp and CTranslate2 do)."""
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    hidden = torch.nn.functional.gelu(encoder.conv1(features))
    hidden = torch.nn.functional.gelu(encoder.conv2(hidden)).permute(0, 2, 1)
    hidden = hidden + encoder.embed_positions.weight[: hidden.shape[1]]
    hidden = torch.nn.functional.dropout(hidden, p=encoder.dropout, training=encoder.training)
    for layer in encoder.layers:
        hidden = layer(hidden, None)
    return BaseModelOutput(last_hidden_state=encoder.layer_norm(hidden))


def model_name(reference: str) -> str:
    """Short name for output folders: "openai/whisper-tiny" → "whisper-tiny",
    bundled "tiny.en" → "whisper-tiny.en"."""
    if reference in zoo.BUNDLED_MODELS:
        return f"whisper-{reference}"
    return Path(reference.rstrip("/")).name


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
