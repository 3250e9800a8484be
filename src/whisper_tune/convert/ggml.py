"""export-ggml: a Hugging Face Whisper model as a whisper.cpp GGML model file
(the format: :mod:`whisper_tune.inference.ggml_format`).

Tensors carry openai-whisper's names (``encoder.blocks.0.attn.query.weight``). Matrices are
f16 (or f32, or quantized), vectors, conv biases and positional embeddings stay f32, and the
conv kernels are f16 unless the whole file is f32 — the types whisper.cpp's loader expects.
The mel filters are the Slaney-normalised filterbank Whisper itself uses (transformers'
``WhisperFeatureExtractor``), so nothing from another repository is needed.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from whisper_tune.audio_context import copy_marker
from whisper_tune.errors import ModelError, WhisperTuneError
from whisper_tune.inference.ggml_format import (
    GGML_TYPE_F16,
    GGML_TYPE_F32,
    GgmlHparams,
    GgmlModel,
    expected_tensor_count,
    read_ggml,
    write_header,
    write_tensor,
)

DTYPES = {"f32": GGML_TYPE_F32, "f16": GGML_TYPE_F16}
# Kept in f32 whatever the file type (whisper.cpp declares them GGML_TYPE_F32).
ALWAYS_F32 = (
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
)
ENGLISH_ONLY_EOT, MULTILINGUAL_EOT = 50256, 50257

_LAYER_PARTS = {
    "self_attn.q_proj": "attn.query",
    "self_attn.k_proj": "attn.key",
    "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out",
    "self_attn_layer_norm": "attn_ln",
    "encoder_attn.q_proj": "cross_attn.query",
    "encoder_attn.k_proj": "cross_attn.key",
    "encoder_attn.v_proj": "cross_attn.value",
    "encoder_attn.out_proj": "cross_attn.out",
    "encoder_attn_layer_norm": "cross_attn_ln",
    "fc1": "mlp.0",
    "fc2": "mlp.2",
    "final_layer_norm": "mlp_ln",
}
_TOP_LEVEL = {
    "encoder.conv1": "encoder.conv1",
    "encoder.conv2": "encoder.conv2",
    "encoder.embed_positions.weight": "encoder.positional_embedding",
    "encoder.layer_norm": "encoder.ln_post",
    "decoder.embed_tokens": "decoder.token_embedding",
    "decoder.embed_positions.weight": "decoder.positional_embedding",
    "decoder.layer_norm": "decoder.ln",
}
_LAYER_NAME = re.compile(r"^(encoder|decoder)\.layers\.(\d+)\.(.+)\.(weight|bias)$")


def ggml_name(hf_name: str) -> str | None:
    """openai-whisper's name for a ``WhisperForConditionalGeneration`` parameter.

    ``model.encoder.layers.3.self_attn.q_proj.weight`` → ``encoder.blocks.3.attn.query.weight``;
    ``proj_out.weight`` (tied to the token embedding) → ``None``.
    """
    if hf_name == "proj_out.weight":
        return None
    name = hf_name.removeprefix("model.")
    match = _LAYER_NAME.match(name)
    if match:
        side, index, part, kind = match.groups()
        if part not in _LAYER_PARTS:
            raise ModelError(f"unexpected Whisper parameter {hf_name!r}")
        return f"{side}.blocks.{index}.{_LAYER_PARTS[part]}.{kind}"
    for prefix, mapped in _TOP_LEVEL.items():
        if name == prefix or name.startswith(prefix + "."):
            return mapped + name[len(prefix) :]
    raise ModelError(f"unexpected Whisper parameter {hf_name!r}")


def mel_filters(n_mels: int) -> np.ndarray:
    """Whisper's Slaney mel filterbank, ``(n_mels, 201)`` float32 (16 kHz, n_fft 400)."""
    from transformers import WhisperFeatureExtractor

    return np.ascontiguousarray(
        WhisperFeatureExtractor(feature_size=n_mels).mel_filters.T, dtype=np.float32
    )


def vocabulary_bytes(tokenizer: Any) -> list[bytes]:
    """The byte-level BPE tokens below ``<|endoftext|>`` as raw bytes (GPT-2 byte decoder)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_decoder = {char: byte for byte, char in bytes_to_unicode().items()}
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    tokens = []
    for token in tokenizer.convert_ids_to_tokens(list(range(eot))):
        try:
            tokens.append(bytes(byte_decoder[char] for char in token))
        except (KeyError, TypeError):
            raise ModelError(
                f"token {token!r} is not a byte-level BPE token; whisper.cpp needs Whisper's "
                "own tokenizer"
            ) from None
    return tokens


def export_ggml(
    model_path: str | Path,
    output: str | Path,
    dtype: str = "f16",
    quantize: str | None = None,
    check_audio: str | Path | None = None,
    language: str | None = None,
    local_files_only: bool = False,
) -> dict[str, Any]:
    """Write ``model_path`` (a Hugging Face Whisper dir, bundled name or hub id) as a whisper.cpp
    model file at ``output``; return a report.

    ``dtype`` (f16/f32) is the type of the weight matrices; ``quantize`` (q8_0/q5_0) quantizes
    them instead with whisper.cpp's own ggml quantizer (from pywhispercpp). The file is written
    under a temporary name beside ``output``, read back and checked, then renamed into place.
    With ``check_audio`` whisper.cpp transcribes that clip from the new file and the result is
    compared with the Hugging Face model's greedy transcript (``report["check"]``).
    """
    import torch
    from tqdm import tqdm

    from whisper_tune.models import load_processor, load_whisper
    from whisper_tune.resolve import resolve_hf_model

    if dtype not in DTYPES:
        raise WhisperTuneError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    quantizer = None
    if quantize is not None:
        from whisper_tune.convert.ggml_quant import GgmlQuantizer

        quantizer = GgmlQuantizer(quantize)
    reference = resolve_hf_model(str(model_path), local_files_only)
    output = _output_path(output, reference)

    model = load_whisper(reference, local_files_only=local_files_only, dtype=torch.float32)
    tokenizer = load_processor(reference, local_files_only=local_files_only).tokenizer
    config = model.config
    ftype = quantizer.file_type if quantizer else DTYPES[dtype]
    hparams = GgmlHparams.from_config(config, ftype)
    _check_compatible(model, tokenizer, hparams, quantizer)
    state = model.state_dict()

    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 22) as out:
            write_header(out, hparams, mel_filters(hparams.n_mels), vocabulary_bytes(tokenizer))
            names = {hf: ggml_name(hf) for hf in state}
            tensors = [(hf, name) for hf, name in names.items() if name is not None]
            for hf_name, name in tqdm(tensors, desc=f"writing {output.name}", unit="tensor"):
                array = state[hf_name].detach().to(torch.float32).numpy()
                _write_tensor(out, name, array, dtype, quantizer)
        written = read_ggml(tmp)
        _verify(written, hparams)
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
        dynamic_audio_ctx = copy_marker(reference, output)  # <output>.whisper_tune.json
    finally:
        if tmp.exists():
            tmp.unlink()
    del model, state

    report: dict[str, Any] = {
        "source": reference,
        "output": str(output),
        "bytes": output.stat().st_size,
        "type": quantize or dtype,
        "multilingual": hparams.multilingual,
        "hparams": written.hparams.__dict__,
        "tensors": len(written.tensors),
        "vocabulary": len(written.tokens),
        "dynamic_audio_ctx": dynamic_audio_ctx,
    }
    if check_audio is not None:
        from whisper_tune.convert.ggml_check import check_ggml

        report["check"] = check_ggml(output, reference, check_audio, language, local_files_only)
    return report


def _output_path(output: str | Path, reference: str) -> Path:
    """The output file; it may replace an old export but never a folder or a model's own file."""
    output = Path(output).expanduser()
    if output.is_dir():
        raise WhisperTuneError(
            f"--output {output} is a folder; give a file name such as {output / 'ggml-model.bin'}"
        )
    source = Path(reference)
    if source.is_dir() and output.resolve().parent == source.resolve():
        raise WhisperTuneError(
            f"--output {output} is inside the model folder {source}; write the GGML file elsewhere"
        )
    return output


def _check_compatible(model: Any, tokenizer: Any, hparams: GgmlHparams, quantizer: Any) -> None:
    """Refuse what whisper.cpp cannot represent, before anything is written."""
    config = model.config
    if config.encoder_ffn_dim != 4 * config.d_model or config.decoder_ffn_dim != 4 * config.d_model:
        raise ModelError(
            f"whisper.cpp needs FFN size 4 × d_model ({4 * config.d_model}); this model has "
            f"{config.encoder_ffn_dim} (encoder) and {config.decoder_ffn_dim} (decoder)"
        )
    if getattr(config, "activation_function", "gelu") != "gelu":
        raise ModelError(f"whisper.cpp runs GELU, this model uses {config.activation_function}")
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    expected = MULTILINGUAL_EOT if hparams.multilingual else ENGLISH_ONLY_EOT
    if eot != expected:
        raise ModelError(
            f"<|endoftext|> is token {eot}; whisper.cpp assumes OpenAI's layout ({expected} for a "
            f"{'multilingual' if hparams.multilingual else 'English-only'} vocabulary of "
            f"{hparams.n_vocab})"
        )
    projection, embedding = model.proj_out.weight, model.model.decoder.embed_tokens.weight
    if projection.data_ptr() != embedding.data_ptr() and not bool((projection == embedding).all()):
        raise ModelError(
            "proj_out differs from the token embedding; whisper.cpp uses the embedding for both"
        )
    if quantizer is not None:
        quantizer.check_row_length(config.d_model)


def _write_tensor(out: BinaryIO, name: str, array: np.ndarray, dtype: str, quantizer: Any) -> None:
    """One tensor in the type whisper.cpp's loader declares for it."""
    if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
        array = array.reshape(-1, 1)
    if array.ndim == 1 or name in ALWAYS_F32 or dtype == "f32" and quantizer is None:
        ggml_type, data = GGML_TYPE_F32, array.astype("<f4").tobytes()
    elif quantizer is not None and array.ndim == 2:
        ggml_type, data = quantizer.ggml_type, quantizer.quantize(array)
    else:  # f16 matrices, and the conv kernels of f16 and quantized files
        ggml_type, data = GGML_TYPE_F16, array.astype("<f2").tobytes()
    write_tensor(out, name, array.shape, ggml_type, data)


def _verify(model: GgmlModel, hparams: GgmlHparams) -> None:
    """The written file parses back to the header and tensor count whisper.cpp expects."""
    expected = expected_tensor_count(hparams.n_audio_layer, hparams.n_text_layer)
    names = {t.name for t in model.tensors}
    if model.hparams != hparams or len(model.tensors) != expected or len(names) != expected:
        raise ModelError(
            f"the written GGML file does not read back as expected ({len(model.tensors)} "
            f"tensors, {len(names)} distinct names, expected {expected})"
        )
