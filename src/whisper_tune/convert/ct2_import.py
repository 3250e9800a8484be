"""import-ct2: rebuild a Hugging Face Whisper checkpoint from a CTranslate2 Whisper directory.

The float16/float32 weights of a CTranslate2 ``model.bin`` hold everything the Hugging Face
``WhisperForConditionalGeneration`` needs: the sizes follow from the tensor shapes, the fused
attention projections are split back, and the tokenizer, generation config and feature
extractor are rebuilt from the directory's ``tokenizer.json`` and ``config.json``. A greedy
decode of a sample clip by both models proves the result.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from whisper_tune.convert.ct2_format import Ct2ModelBin, read_model_bin
from whisper_tune.convert.parity import greedy_parity, parity_clip
from whisper_tune.convert.whisper_assets import (
    WhisperDims,
    build_processor,
    build_whisper_parts,
    read_ct2_config,
)
from whisper_tune.errors import ModelError

__all__ = ["build_processor", "import_ct2", "infer_dims", "hf_state_dict", "REPORT_FILE"]

REPORT_FILE = "import_report.json"
_FLOAT_TYPES = ("float32", "float16", "bfloat16")
# CTranslate2 spec scalars that must hold these values for a standard Whisper (GELU, pre-norm).
_EXPECTED_SCALARS = {"decoder/activation": 3, "decoder/pre_norm": 1, "decoder/alibi": 0}


def infer_dims(model: Ct2ModelBin) -> WhisperDims:
    """Whisper's sizes from the tensor shapes (heads from the stored ``num_heads`` scalars)."""
    if model.spec != "WhisperSpec":
        raise ModelError(
            f"{model.path} holds a CTranslate2 {model.spec}, not a Whisper model (WhisperSpec)"
        )
    for name, expected in _EXPECTED_SCALARS.items():
        if name in model.variables and int(model.array(name)) != expected:
            raise ModelError(f"{model.path}: {name} is {int(model.array(name))}, not Whisper's")
    d_model, n_mels, _ = model.array("encoder/conv1/weight").shape
    ffn_dim = model.array("encoder/layer_0/ffn/linear_0/weight").shape[0]
    decoder_ffn = model.array("decoder/layer_0/ffn/linear_0/weight").shape[0]
    if decoder_ffn != ffn_dim:
        raise ModelError(
            f"{model.path}: encoder and decoder FFN sizes differ ({ffn_dim}, {decoder_ffn})"
        )
    return WhisperDims(
        n_mels=n_mels,
        n_vocab=model.array("decoder/embeddings/weight").shape[0],
        d_model=d_model,
        encoder_layers=_count_layers(model, "encoder"),
        encoder_heads=_heads(model, "encoder", d_model),
        decoder_layers=_count_layers(model, "decoder"),
        decoder_heads=_heads(model, "decoder", d_model),
        ffn_dim=ffn_dim,
        n_audio_ctx=model.array("encoder/position_encodings/encodings").shape[0],
        n_text_ctx=model.array("decoder/position_encodings/encodings").shape[0],
    )


def _count_layers(model: Ct2ModelBin, side: str) -> int:
    count = 0
    while f"{side}/layer_{count}/ffn/linear_0/weight" in model.variables:
        count += 1
    if count == 0:
        raise ModelError(f"{model.path} has no {side} layers")
    return count


def _heads(model: Ct2ModelBin, side: str, d_model: int) -> int:
    """The stored head count, else Whisper's constant head size of 64."""
    name = f"{side}/num_heads"
    return int(model.array(name)) if name in model.variables else d_model // 64


def hf_state_dict(model: Ct2ModelBin, dims: WhisperDims) -> dict[str, np.ndarray]:
    """The Hugging Face state dict (float32 arrays) for a CTranslate2 Whisper ``model.bin``.

    Every non-scalar tensor of the file must be used, and the key bias slices CTranslate2
    fills with zeros must be zero, so nothing is silently dropped.
    """
    used: set[str] = set()
    state: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        variable = model.variable(name)
        if variable.dtype not in _FLOAT_TYPES:
            raise ModelError(
                f"{model.path}: {name} is stored as {variable.dtype}; quantized models cannot be "
                "imported without loss — convert the original with --quantization float16"
            )
        used.add(model.aliases.get(name, name))
        return np.array(model.array(name), dtype=np.float32)

    def linear(hf: str, ct2: str) -> None:
        state[f"{hf}.weight"] = get(f"{ct2}/weight")
        state[f"{hf}.bias"] = get(f"{ct2}/bias")

    def norm(hf: str, ct2: str) -> None:
        state[f"{hf}.weight"] = get(f"{ct2}/gamma")
        state[f"{hf}.bias"] = get(f"{ct2}/beta")

    def fused(hf: str, ct2: str, names: tuple[str, ...]) -> None:
        weights = np.split(get(f"{ct2}/weight"), len(names))
        biases = np.split(get(f"{ct2}/bias"), len(names))
        for name, weight, bias in zip(names, weights, biases, strict=True):
            state[f"{hf}.{name}.weight"] = weight
            if name != "k_proj":
                state[f"{hf}.{name}.bias"] = bias
            elif np.any(bias):
                raise ModelError(f"{model.path}: {ct2} has a non-zero key bias; not a Whisper")

    for side, layers in (("encoder", dims.encoder_layers), ("decoder", dims.decoder_layers)):
        state[f"model.{side}.embed_positions.weight"] = get(f"{side}/position_encodings/encodings")
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        for i in range(layers):
            hf, ct2 = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            fused(
                f"{hf}.self_attn", f"{ct2}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj")
            )
            linear(f"{hf}.self_attn.out_proj", f"{ct2}/self_attention/linear_1")
            norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
            if side == "decoder":
                linear(f"{hf}.encoder_attn.q_proj", f"{ct2}/attention/linear_0")
                fused(f"{hf}.encoder_attn", f"{ct2}/attention/linear_1", ("k_proj", "v_proj"))
                linear(f"{hf}.encoder_attn.out_proj", f"{ct2}/attention/linear_2")
                norm(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
            linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
            linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")
            norm(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")
    linear("model.encoder.conv1", "encoder/conv1")
    linear("model.encoder.conv2", "encoder/conv2")
    embedding = state["model.decoder.embed_tokens.weight"] = get("decoder/embeddings/weight")
    projection = model.aliases.get("decoder/projection/weight", "decoder/projection/weight")
    if projection != "decoder/embeddings/weight" and not np.array_equal(get(projection), embedding):
        raise ModelError(f"{model.path}: the output projection is not tied to the embedding")
    state["proj_out.weight"] = embedding

    unused = [name for name, v in model.variables.items() if v.array.ndim and name not in used]
    if unused:
        raise ModelError(f"{model.path}: tensors a Whisper does not have: {', '.join(unused[:5])}")
    return state


def _build_model(config, generation, state: dict[str, np.ndarray]):
    """A ``WhisperForConditionalGeneration`` holding exactly ``state`` (strict load)."""
    import torch
    from transformers import WhisperForConditionalGeneration

    tensors = {name: torch.from_numpy(array) for name, array in state.items()}
    tensors["proj_out.weight"] = tensors["model.decoder.embed_tokens.weight"]
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    try:
        model.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelError(f"the rebuilt weights do not fit Whisper: {exc}") from None
    model.tie_weights()
    model.generation_config = generation
    return model.eval()


def import_ct2(
    model_path: str | Path,
    output_dir: str | Path,
    check_audio: str | Path | None = None,
    check: bool = True,
    local_files_only: bool = False,
    check_language: str | None = None,
) -> dict[str, Any]:
    """Rebuild a Hugging Face Whisper directory from a CTranslate2 one; return the report.

    ``model_path`` is a CTranslate2 directory, a bundled name ("tiny.en", "base") or a
    faster-whisper model id. The output (safetensors weights, config, generation config,
    tokenizer with timestamp tokens, feature extractor, ``import_report.json``) is written to a
    temporary folder and renamed to ``output_dir``, which must not exist or be empty. Unless
    ``check`` is false, greedy decodes of ``check_audio`` (default: a recorded English
    sentence) by the new model and by CTranslate2 are compared, in ``check_language`` for a
    multilingual model (default: the language CTranslate2 detects).
    """
    from whisper_tune.languages import language_code
    from whisper_tune.models import is_hf_dir, resolve_ct2_model

    language = language_code(check_language)
    if is_hf_dir(model_path) and not (Path(model_path) / "model.bin").is_file():
        raise ModelError(
            f"{model_path} is already a Hugging Face Whisper model: fine-tune or load it as it "
            "is; import-ct2 reads CTranslate2 directories (model.bin)"
        )
    ct2_dir = Path(resolve_ct2_model(str(model_path), local_files_only))
    output = Path(output_dir).expanduser()
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ModelError(f"{output} already exists and is not empty; choose a new --output_dir")

    clip = parity_clip(check_audio) if check else None

    model_bin = read_model_bin(ct2_dir / "model.bin")
    dims = infer_dims(model_bin)
    config, generation, processor = build_whisper_parts(ct2_dir, read_ct2_config(ct2_dir), dims)
    model = _build_model(config, generation, hf_state_dict(model_bin, dims))
    report: dict[str, Any] = {
        "source": str(ct2_dir),
        "format": {
            "version": model_bin.version,
            "spec": model_bin.spec,
            "revision": model_bin.revision,
        },
        "source_dtypes": sorted({v.dtype for v in model_bin.variables.values() if v.array.ndim}),
        "dims": dims.__dict__,
        "multilingual": generation.is_multilingual,
        "parameters": sum(p.numel() for p in model.parameters()),
    }

    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    scratch.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        model.save_pretrained(scratch)
        processor.save_pretrained(scratch)
        del model
        if clip is not None:
            audio, audio_name = clip
            parity = greedy_parity(scratch, ct2_dir, audio, language)
            report["parity"] = {"audio": audio_name, **parity}
        (scratch / REPORT_FILE).write_text(
            json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        if output.exists():
            output.rmdir()
        scratch.rename(output)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch)
    report["output_dir"] = str(output)
    return report
