"""export-ggml: the whisper.cpp file format, read back by our parser and loaded and run by
whisper.cpp itself (pywhispercpp)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whisper_tune.audio import load_audio
from whisper_tune.cli import main
from whisper_tune.convert.ggml import export_ggml, ggml_name
from whisper_tune.convert.ggml_check import F32_HINT, whisper_cpp_text
from whisper_tune.errors import ModelError, WhisperTuneError
from whisper_tune.inference.ggml_format import (
    GGML_TYPE_F16,
    GGML_TYPE_F32,
    expected_tensor_count,
    read_ggml,
)
from whisper_tune.text import normalize_english

SENTENCE = "The quick brown fox jumps over the lazy dog, then rests by the river bank."


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A synthesised English sentence as a wav file."""
    from whisper_tune.synth import synthesize_to_file

    return synthesize_to_file(tmp_path_factory.mktemp("ggml_clip") / "fox.wav", SENTENCE, seed=0)


def _hf_state(model_dir):
    import torch

    from whisper_tune.models import load_whisper

    model = load_whisper(str(model_dir), local_files_only=True, dtype=torch.float32)
    return model.config, {k: v.numpy() for k, v in model.state_dict().items()}


def test_names_follow_openai_whisper():
    assert ggml_name("model.encoder.layers.3.self_attn.q_proj.weight") == (
        "encoder.blocks.3.attn.query.weight"
    )
    assert ggml_name("model.decoder.layers.0.encoder_attn.k_proj.weight") == (
        "decoder.blocks.0.cross_attn.key.weight"
    )
    assert ggml_name("model.decoder.layers.1.encoder_attn_layer_norm.bias") == (
        "decoder.blocks.1.cross_attn_ln.bias"
    )
    assert ggml_name("model.encoder.layers.0.fc2.bias") == "encoder.blocks.0.mlp.2.bias"
    assert ggml_name("model.encoder.layer_norm.weight") == "encoder.ln_post.weight"
    assert ggml_name("model.decoder.embed_tokens.weight") == "decoder.token_embedding.weight"
    assert ggml_name("model.encoder.embed_positions.weight") == "encoder.positional_embedding"
    assert ggml_name("model.encoder.conv2.bias") == "encoder.conv2.bias"
    assert ggml_name("proj_out.weight") is None
    with pytest.raises(ModelError):
        ggml_name("model.decoder.layers.0.adapter.weight")


def test_multilingual_f16_file_layout(tiny_whisper_multi_4x, tmp_path):
    from transformers import WhisperFeatureExtractor

    out = tmp_path / "multi.bin"
    report = export_ggml(tiny_whisper_multi_4x, out, dtype="f16", local_files_only=True)
    config, state = _hf_state(tiny_whisper_multi_4x)
    ggml = read_ggml(out)

    assert out.read_bytes()[:4] == b"lmgg"  # 0x67676d6c little-endian
    assert report["multilingual"] and ggml.hparams.multilingual
    h = ggml.hparams
    assert (h.n_vocab, h.n_audio_ctx, h.n_audio_state, h.n_audio_head, h.n_audio_layer) == (
        51865,
        config.max_source_positions,
        64,
        4,
        2,
    )
    assert (h.n_text_ctx, h.n_text_state, h.n_text_head, h.n_text_layer, h.n_mels, h.ftype) == (
        config.max_target_positions,
        64,
        4,
        2,
        80,
        1,
    )
    expected_filters = WhisperFeatureExtractor(feature_size=80).mel_filters.T
    assert ggml.mel_filters.shape == (80, 201)
    np.testing.assert_allclose(ggml.mel_filters, expected_filters, rtol=1e-6, atol=1e-9)
    # byte-level BPE tokens as raw bytes, up to but excluding <|endoftext|> (50257 here)
    assert len(ggml.tokens) == 50257
    assert ggml.tokens[220] == b" " and ggml.tokens[1] == b'"'
    assert any(t.decode("utf-8", "replace") == " the" for t in ggml.tokens[:1000])

    assert len(ggml.tensors) == expected_tensor_count(2, 2) == 89
    types = {t.name: t.ggml_type for t in ggml.tensors}
    shapes = {t.name: t.shape for t in ggml.tensors}
    assert "decoder.proj.weight" not in types
    assert types["decoder.blocks.1.cross_attn.query.weight"] == GGML_TYPE_F16
    assert types["decoder.token_embedding.weight"] == GGML_TYPE_F16
    assert types["encoder.conv1.weight"] == GGML_TYPE_F16
    assert shapes["encoder.conv1.weight"] == (64, 80, 3)
    assert shapes["encoder.conv1.bias"] == (64, 1)
    for name in (
        "encoder.conv1.bias",
        "encoder.positional_embedding",
        "decoder.positional_embedding",
        "encoder.blocks.0.attn.query.bias",
    ):
        assert types[name] == GGML_TYPE_F32, name
    np.testing.assert_array_equal(
        ggml.tensor("decoder.blocks.0.attn.key.weight"),
        state["model.decoder.layers.0.self_attn.k_proj.weight"].astype(np.float16),
    )
    np.testing.assert_array_equal(
        ggml.tensor("encoder.blocks.1.mlp_ln.bias"),
        state["model.encoder.layers.1.final_layer_norm.bias"],
    )


def test_whisper_cpp_loads_f32_and_quantized_exports(
    tiny_whisper_en_4x, tiny_whisper_multi_4x, tmp_path
):
    f32 = tmp_path / "en-f32.bin"
    export_ggml(tiny_whisper_en_4x, f32, dtype="f32", local_files_only=True)
    ggml = read_ggml(f32)
    assert ggml.hparams.ftype == 0 and ggml.hparams.n_vocab == 51864
    assert len(ggml.tokens) == 50256
    assert {t.ggml_type for t in ggml.tensors} == {GGML_TYPE_F32}

    q8 = tmp_path / "multi-q8_0.bin"
    report = export_ggml(tiny_whisper_multi_4x, q8, quantize="q8_0", local_files_only=True)
    ggml = read_ggml(q8)
    assert report["type"] == "q8_0" and ggml.hparams.ftype == 2007  # GGML_QNT_VERSION 2
    types = {t.name: t.ggml_type for t in ggml.tensors}
    assert types["decoder.token_embedding.weight"] == 8  # GGML_TYPE_Q8_0
    assert types["encoder.blocks.0.mlp.0.weight"] == 8
    assert types["encoder.conv2.weight"] == GGML_TYPE_F16
    assert types["encoder.positional_embedding"] == GGML_TYPE_F32
    assert types["encoder.conv2.bias"] == GGML_TYPE_F32
    assert q8.stat().st_size < (tmp_path / "en-f32.bin").stat().st_size

    # whisper.cpp accepts every tensor's name, type and shape and runs the (random) model
    assert isinstance(whisper_cpp_text(q8, np.zeros(16000, np.float32), None), str)
    # f32 files load (whisper.cpp gets as far as running conv1d), but its CPU conv1d needs f16
    # kernels (whisper.cpp issue 2557): the failure is a clear error naming the fix, not a
    # crash. If a whisper.cpp release lifts this, the f32 file must transcribe: update here.
    with pytest.raises(ModelError) as refused:
        whisper_cpp_text(f32, np.zeros(16000, np.float32), None)
    message = str(refused.value)
    assert str(f32) in message and "GGML_TYPE_F16" in message
    assert message.endswith(F32_HINT)


def test_bad_inputs_are_clear_errors(tiny_whisper_en_4x, tiny_whisper_en, tmp_path, capsys):
    with pytest.raises(WhisperTuneError, match="is a folder"):
        export_ggml(tiny_whisper_en_4x, tmp_path, local_files_only=True)
    with pytest.raises(WhisperTuneError, match="inside the model folder"):
        export_ggml(tiny_whisper_en_4x, tiny_whisper_en_4x / "ggml.bin", local_files_only=True)
    with pytest.raises(ModelError, match="FFN size 4 × d_model"):  # whisper.cpp's fixed shape
        export_ggml(tiny_whisper_en, tmp_path / "x.bin", local_files_only=True)
    with pytest.raises(WhisperTuneError, match="--quantize must be one of"):
        export_ggml(tiny_whisper_en_4x, tmp_path / "x.bin", quantize="q4_9", local_files_only=True)
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "export-ggml",
                "--model_path",
                str(tmp_path / "nope"),
                "--output",
                str(tmp_path / "x.bin"),
            ]
        )
    assert exit_info.value.code == 2
    assert "not found" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())

    good = tmp_path / "good.bin"
    export_ggml(tiny_whisper_en_4x, good, local_files_only=True)
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ModelError, match="truncated"):
        read_ggml(truncated)
    with pytest.raises(ModelError, match="truncated"):
        whisper_cpp_text(truncated, np.zeros(16000, np.float32), None)
    not_ggml = tmp_path / "not.bin"
    not_ggml.write_bytes(b"\0" * 64)
    with pytest.raises(ModelError, match="bad magic"):
        read_ggml(not_ggml)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.bin", "not.bin", "truncated.bin"]


@pytest.mark.slow
def test_bundled_tiny_en_runs_in_whisper_cpp(clip, tmp_path, capsys):
    out = tmp_path / "ggml-tiny.en.bin"
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "export-ggml",
                "--model_path",
                "tiny.en",
                "--output",
                str(out),
                "--check_audio",
                str(clip),
            ]
        )
    code = exit_info.value.code
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "same words" in printed
    whisper_cpp_line = next(line for line in printed.splitlines() if "whisper.cpp:" in line)
    assert "quick brown fox jumps over the lazy dog" in whisper_cpp_line.lower()
    ggml = read_ggml(out)
    assert ggml.hparams.n_audio_state == 384 and ggml.hparams.n_audio_layer == 4
    assert len(ggml.tensors) == 167

    # q8_0 by whisper.cpp's own quantizer: same words as the Hugging Face model printed above
    q8 = tmp_path / "ggml-tiny.en-q8_0.bin"
    report = export_ggml("tiny.en", q8, quantize="q8_0")
    assert report["bytes"] < 0.6 * out.stat().st_size
    hf_line = next(line for line in printed.splitlines() if "Transformers:" in line)
    q8_text = whisper_cpp_text(q8, load_audio(clip), None)
    assert normalize_english(q8_text) == normalize_english(hf_line.split(":", 1)[1])


@pytest.mark.slow
def test_merged_fine_tune_runs_in_whisper_cpp(clip, tmp_path):
    """A LoRA adapter merged by ``whisper-tune merge``, exported, transcribed by whisper.cpp."""
    import torch
    from peft import LoraConfig, get_peft_model

    from whisper_tune.merge import merge_lora
    from whisper_tune.models import load_whisper
    from whisper_tune.resolve import resolve_hf_model

    base_dir = resolve_hf_model("tiny.en")
    torch.manual_seed(0)
    config = LoraConfig(
        r=8, lora_alpha=8, target_modules=["q_proj", "v_proj", "fc1"], init_lora_weights=False
    )
    peft_model = get_peft_model(load_whisper(base_dir, dtype=torch.float32), config)
    with torch.no_grad():  # a small, non-zero update, as a short fine-tune leaves
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.02)
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = merge_lora(tmp_path / "adapter", tmp_path / "models", base_model="tiny.en")

    out = tmp_path / "ggml-finetune.bin"
    report = export_ggml(merged, out, check_audio=clip)
    assert report["check"]["same_text"], json.dumps(report["check"], indent=1)
    _, merged_state = _hf_state(merged)
    _, base_state = _hf_state(base_dir)
    name = "model.decoder.layers.1.self_attn.q_proj.weight"
    exported = read_ggml(out).tensor("decoder.blocks.1.attn.query.weight")
    np.testing.assert_array_equal(exported, merged_state[name].astype(np.float16))
    assert not np.array_equal(exported, base_state[name].astype(np.float16))


@pytest.mark.slow
def test_a_marked_model_is_checked_at_the_clips_own_audio_context(clip, tmp_path):
    """export-ggml's check of a model marked for dynamic audio context runs whisper.cpp with
    ``-ac`` (the clip's positions) and Transformers on the same short encoder input; the
    CTranslate2 conversion of the model, at its own short context, says the same words."""
    import shutil

    from whisper_tune.audio_context import ContextRule, frames_of, write_marker
    from whisper_tune.convert.ct2_export import convert_to_ct2
    from whisper_tune.inference import TranscribeOptions, load_transcriber
    from whisper_tune.resolve import resolve_hf_model
    from whisper_tune.text import TextOptions

    marked = tmp_path / "tiny.en-marked"  # stock weights: the marker is what is tested here
    shutil.copytree(resolve_hf_model("tiny.en"), marked)
    write_marker(marked)
    out = tmp_path / "ggml-marked.bin"
    report = export_ggml(marked, out, check_audio=clip)
    audio = load_audio(clip)
    check = report["check"]
    assert check["audio_ctx"] == ContextRule().positions(frames_of(len(audio))) < 1500
    assert check["same_text"], json.dumps(check, indent=1)
    assert "quick brown fox" in check["whisper_cpp_normalized"]
    ct2_dir = tmp_path / "ct2-marked"
    convert_to_ct2(str(marked), ct2_dir, quantization="float32", check=False)
    transcriber = load_transcriber(str(ct2_dir))  # --audio_ctx auto: the marker's short context
    positions = []
    encode = transcriber.model.encode
    transcriber.model.encode = lambda f: positions.append(encode(f).shape[1]) or encode(f)
    options = TranscribeOptions(language="en", beam_size=1, temperature=0.0, timestamps=False)
    segments, _ = transcriber.transcribe(audio, options)
    assert positions == [check["audio_ctx"]]
    ct2_text = " ".join(segment.text for segment in segments)
    ct2_normalized = TextOptions(remove_pun=True, english_normalizer=True).apply(ct2_text).lower()
    assert ct2_normalized == check["whisper_cpp_normalized"], ct2_text
    # the context reaches whisper.cpp: this stock model given 2 s of its ~4 s clip goes wrong
    heard_in_2_s = normalize_english(whisper_cpp_text(out, audio, None, 100))
    assert heard_in_2_s != check["whisper_cpp_normalized"]
