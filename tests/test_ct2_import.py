"""import-ct2 on the real bundled weights: parity with CTranslate2, training, errors."""

from __future__ import annotations

import json
import re
import shutil
import struct

import numpy as np
import pytest
import torch

from whisper_tune import zoo
from whisper_tune.cli import main
from whisper_tune.convert.ct2_format import read_model_bin
from whisper_tune.convert.ct2_import import REPORT_FILE, import_ct2
from whisper_tune.errors import ModelError
from whisper_tune.models import load_processor, load_whisper
from whisper_tune.synth import synthesize

ENGLISH = "Please send the quarterly report to the finance team before Friday."
CHINESE = "我们明天早上九点在北京开会。"


@pytest.fixture(scope="module")
def tiny_en_import(tmp_path_factory):
    """The bundled tiny.en imported with the default (synthesised) parity clip."""
    output = tmp_path_factory.mktemp("import") / "tiny-en-hf"
    return output, import_ct2("tiny.en", output)


def test_tiny_en_import_matches_ctranslate2(tiny_en_import):
    output, report = tiny_en_import
    assert report["dims"] == {
        "n_mels": 80, "n_vocab": 51864, "d_model": 384, "encoder_layers": 4,
        "encoder_heads": 6, "decoder_layers": 4, "decoder_heads": 6, "ffn_dim": 1536,
        "n_audio_ctx": 1500, "n_text_ctx": 448,
    }  # fmt: skip
    assert report["parameters"] == 37_760_256
    parity = report["parity"]
    assert parity["same_tokens"] and parity["same_text"]
    assert "quick brown fox" in parity["hf_text"]
    assert parity["encoder_max_abs_diff"] < 1e-3
    assert json.loads((output / REPORT_FILE).read_text())["parity"]["same_text"] is True
    assert not list(output.parent.glob(".*tmp"))  # no scratch folder left behind

    # The weights are exactly the float16 values of model.bin (q/k/v split from the fused one).
    from safetensors.numpy import load_file

    state = load_file(output / "model.safetensors")
    source = read_model_bin(zoo.bundled_ct2_dir("tiny.en") / "model.bin")
    fused = source.array("decoder/layer_2/self_attention/linear_0/weight").astype(np.float32)
    q, k, v = np.split(fused, 3)
    np.testing.assert_array_equal(state["model.decoder.layers.2.self_attn.k_proj.weight"], k)
    np.testing.assert_array_equal(state["model.decoder.layers.2.self_attn.v_proj.weight"], v)
    np.testing.assert_array_equal(
        state["model.encoder.conv1.weight"],
        source.array("encoder/conv1/weight").astype(np.float32),
    )


@pytest.mark.slow
def test_tiny_en_import_is_complete_and_trains(tiny_en_import):
    output, _ = tiny_en_import
    processor = load_processor(str(output), local_files_only=True)
    model = load_whisper(str(output), local_files_only=True)
    tokenizer = processor.tokenizer
    assert len(tokenizer) == model.config.vocab_size == 51864
    assert tokenizer.convert_tokens_to_ids("<|30.00|>") == 51863
    generation = model.generation_config
    assert generation.decoder_start_token_id == 50257
    assert generation.no_timestamps_token_id == 50362
    assert generation.is_multilingual is False
    assert len(generation.alignment_heads) == 8 and generation.suppress_tokens

    audio = synthesize(ENGLISH, "en", seed=3)
    features = processor.feature_extractor(
        audio, sampling_rate=16000, return_tensors="pt"
    ).input_features
    with torch.no_grad():
        segments = model.generate(features, return_timestamps=True)
    text = tokenizer.decode(segments[0], decode_with_timestamps=True)
    assert re.match(r"<\|0\.\d\d\|>", text), text  # timestamps still come out

    # A few plain (LoRA-free) steps on the decoder: the loss on this clip must fall.
    labels = torch.tensor([tokenizer(ENGLISH).input_ids[1:]])
    model.train()
    for param in model.model.encoder.parameters():
        param.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    losses = []
    for _ in range(4):
        loss = model(input_features=features, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses


@pytest.mark.slow
def test_base_import_speaks_chinese(tmp_path):
    clip = tmp_path / "zh.wav"
    from whisper_tune.synth import synthesize_to_file

    synthesize_to_file(clip, CHINESE, "zh", seed=0)
    report = import_ct2("base", tmp_path / "base-hf", check_audio=clip, check_language="Chinese")
    assert report["multilingual"] and report["dims"]["n_vocab"] == 51865
    parity = report["parity"]
    assert parity["decode_language"] == "<|zh|>"
    assert parity["same_language"] and parity["same_text"], parity

    output = tmp_path / "base-hf"
    processor = load_processor(str(output), local_files_only=True)
    model = load_whisper(str(output), local_files_only=True)
    assert model.generation_config.lang_to_id["<|zh|>"] == 50260
    assert model.generation_config.task_to_id == {"transcribe": 50359, "translate": 50358}
    from whisper_tune.audio import load_audio

    features = processor.feature_extractor(
        load_audio(clip), sampling_rate=16000, return_tensors="pt"
    ).input_features
    with torch.no_grad():
        ids = model.generate(features, language="zh", task="transcribe")
    text = processor.tokenizer.decode(ids[0], skip_special_tokens=True)
    assert re.search(r"[\u4e00-\u9fff]", text), text


def test_round_trip_through_ctranslate2_converter(tiny_en_import, tmp_path):
    """Converting the rebuilt model back reproduces model.bin's tensors bit for bit, and an
    int8 conversion is refused (its weights cannot be imported without loss)."""
    from ctranslate2.converters import TransformersConverter

    output, _ = tiny_en_import
    back = TransformersConverter(str(output)).convert(str(tmp_path / "f16"), quantization="float16")
    original = read_model_bin(zoo.bundled_ct2_dir("tiny.en") / "model.bin")
    rebuilt = read_model_bin(f"{back}/model.bin")
    tensors = {name for name, variable in original.variables.items() if variable.array.ndim}
    assert tensors == {name for name, v in rebuilt.variables.items() if v.array.ndim}
    for name in tensors:
        np.testing.assert_array_equal(
            rebuilt.variables[name].array, original.variables[name].array, err_msg=name
        )

    int8 = TransformersConverter(str(output)).convert(str(tmp_path / "int8"), quantization="int8")
    shutil.copy(output / "tokenizer.json", int8)
    with pytest.raises(ModelError, match="quantized"):
        import_ct2(int8, tmp_path / "from-int8", check=False)


def _ct2_dir_with(tmp_path, model_bin: bytes):
    """A CTranslate2-looking directory: the tiny.en side files and the given model.bin."""
    directory = tmp_path / "ct2"
    directory.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(zoo.bundled_files_dir("tiny.en") / name, directory / name)
    (directory / "model.bin").write_bytes(model_bin)
    return directory


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def test_truncated_model_bin_is_refused(tmp_path):
    head = (zoo.bundled_ct2_dir("tiny.en") / "model.bin").read_bytes()[:100_000]
    directory = _ct2_dir_with(tmp_path, head)
    with pytest.raises(ModelError, match="truncated or corrupt"):
        import_ct2(directory, tmp_path / "out", check=False)
    assert not (tmp_path / "out").exists()


def test_unsupported_version_is_refused(tmp_path):
    model_bin = struct.pack("<I", 5) + _string("WhisperSpec") + struct.pack("<II", 3, 0)
    directory = _ct2_dir_with(tmp_path, model_bin)
    with pytest.raises(ModelError, match="format version 5 is not supported"):
        import_ct2(directory, tmp_path / "out", check=False)


def test_other_spec_is_refused(tmp_path):
    model_bin = struct.pack("<I", 6) + _string("TransformerSpec") + struct.pack("<III", 1, 0, 0)
    directory = _ct2_dir_with(tmp_path, model_bin)
    with pytest.raises(ModelError, match="TransformerSpec, not a Whisper"):
        import_ct2(directory, tmp_path / "out", check=False)


def test_hf_dir_is_refused_with_advice(tiny_whisper_en, tmp_path, capsys):
    with pytest.raises(ModelError, match="already a Hugging Face Whisper model"):
        import_ct2(tiny_whisper_en, tmp_path / "out")
    with pytest.raises(SystemExit) as exit_info:
        main(["import-ct2", "--model_path", str(tiny_whisper_en), "--output_dir", "x"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("whisper-tune import-ct2: error:") and "\n" not in error


def test_cli_refuses_a_non_empty_output_dir_and_imports(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        main(["import-ct2", "--model_path", "tiny.en", "--output_dir", str(tmp_path / "taken")])
    assert exit_info.value.code == 2
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"

    with pytest.raises(SystemExit) as exit_info:
        main(["import-ct2", "--model-path", "tiny.en", "--output-dir", str(tmp_path / "new"),
              "--no_check"])  # fmt: skip
    assert exit_info.value.code == 0
    assert "37.76 M parameters" in capsys.readouterr().out
    assert "parity" not in json.loads((tmp_path / "new" / REPORT_FILE).read_text())


def test_any_size_round_trips_exactly(tmp_path):
    """A random Whisper of another shape (128 mel bins like large-v3, 3+2 layers, 6 heads of
    16, multilingual) converted by CTranslate2 in float32 imports back to the same weights."""
    from ctranslate2.converters import TransformersConverter
    from safetensors.torch import load_file
    from transformers import WhisperForConditionalGeneration

    from whisper_tune.convert.whisper_assets import WhisperDims, build_whisper_parts

    dims = WhisperDims(
        n_mels=128, n_vocab=51865, d_model=96, encoder_layers=3, encoder_heads=6,
        decoder_layers=2, decoder_heads=6, ffn_dim=192, n_audio_ctx=1500, n_text_ctx=448,
    )  # fmt: skip
    config, generation, processor = build_whisper_parts(zoo.bundled_files_dir("base"), {}, dims)
    torch.manual_seed(1)
    original = WhisperForConditionalGeneration(config)
    original.generation_config = generation
    original.save_pretrained(tmp_path / "hf")
    processor.save_pretrained(tmp_path / "hf")
    ct2 = TransformersConverter(str(tmp_path / "hf"), copy_files=["tokenizer.json"]).convert(
        str(tmp_path / "ct2"), quantization="float32"
    )

    report = import_ct2(ct2, tmp_path / "back", check=False)
    assert report["dims"] == dims.__dict__ and report["source_dtypes"] == ["float32"]
    expected = original.state_dict()
    imported = load_file(tmp_path / "back" / "model.safetensors")
    assert set(imported) | {"proj_out.weight"} == set(expected)
    for name, tensor in imported.items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0, msg=name)
    rebuilt = load_whisper(str(tmp_path / "back"), local_files_only=True).generation_config
    assert rebuilt.lang_to_id == generation.lang_to_id
    assert rebuilt.alignment_heads == generation.alignment_heads
    assert load_processor(str(tmp_path / "back")).feature_extractor.feature_size == 128
