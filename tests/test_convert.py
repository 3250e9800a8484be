"""HF → CTranslate2 conversion: files faster-whisper needs offline, parity, atomic output."""

from __future__ import annotations

import json

import pytest

from whisper_tune.audio import load_audio
from whisper_tune.cli import main
from whisper_tune.convert.ct2_export import REPORT_NAME, convert_to_ct2
from whisper_tune.convert.parity import greedy_parity, parity_clip, parity_passed, token_agreement
from whisper_tune.errors import ModelError
from whisper_tune.inference import TranscribeOptions, load_transcriber

SIDE_FILES = ("tokenizer.json", "preprocessor_config.json", "generation_config.json")


@pytest.fixture
def one_torch_thread():
    """The parity check's transformers decode on one thread (two threads on the shared 2-core
    CI box are many times slower); the thread count is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_token_agreement():
    assert token_agreement([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert token_agreement([1, 2, 3, 4], [1, 2, 9, 4]) == 0.75
    assert token_agreement([1, 2], []) == 0.0 and token_agreement([], []) == 1.0


@pytest.mark.parametrize(("quantization", "check"), [("float32", True), ("int8", False)])
def test_tiny_random_model_converts_offline(
    tiny_whisper_en, english_clip, tmp_path, quantization, check, one_torch_thread
):
    out = tmp_path / f"ct2-{quantization}"
    report = convert_to_ct2(
        str(tiny_whisper_en), out, quantization, audio_path=english_clip[0], check=check
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temp folder left
    for name in ("model.bin", "config.json", *SIDE_FILES, REPORT_NAME):
        assert (out / name).is_file(), name
    assert json.loads((out / REPORT_NAME).read_text(encoding="utf-8")) == report
    if check:
        parity = report["parity"]
        assert parity_passed(parity) and parity["hf_tokens"] > 0, parity
        assert "padded" in parity["features"]
    else:
        assert "parity" not in report
    # faster-whisper loads it with the hub switched off (HF_HUB_OFFLINE=1 in conftest)
    options = TranscribeOptions(beam_size=1, temperature=0.0, hallucination_guard=False)
    segments, info = load_transcriber(str(out)).transcribe(load_audio(english_clip[0]), options)
    list(segments)
    assert info.language == "en"


def test_parity_check_fails_a_corrupted_conversion(tiny_whisper_en, tmp_path, one_torch_thread):
    """A conversion whose output layer norm came out negated (argmax becomes argmin) must fail
    the parity check that a faithful float32 conversion passes."""
    import shutil

    import torch

    from whisper_tune.models import load_whisper

    corrupted = tmp_path / "corrupted"
    shutil.copytree(tiny_whisper_en, corrupted)
    model = load_whisper(str(corrupted), local_files_only=True, dtype=torch.float32)
    with torch.no_grad():
        model.model.decoder.layer_norm.weight.neg_()
        model.model.decoder.layer_norm.bias.neg_()
    model.save_pretrained(corrupted)
    convert_to_ct2(str(corrupted), tmp_path / "ct2", "float32", check=False)
    parity = greedy_parity(tiny_whisper_en, tmp_path / "ct2", parity_clip()[0])
    assert parity["hf_tokens"] > 0 and not parity_passed(parity), parity


@pytest.mark.slow
@pytest.mark.parametrize(("quantization", "min_agreement"), [("float32", 1.0), ("int8", 0.8)])
def test_tiny_en_parity(english_clip, tmp_path, quantization, min_agreement, one_torch_thread):
    path, text = english_clip
    report = convert_to_ct2("tiny.en", tmp_path / "ct2", quantization, audio_path=path)
    parity = report["parity"]
    assert parity["token_agreement"] >= min_agreement
    if quantization == "float32":
        assert parity["same_text"] and parity["hf_text"] == parity["ct2_text"]
    assert "snow tomorrow" in parity["deployed_text"].lower()
    segments, _ = load_transcriber(str(tmp_path / "ct2")).transcribe(
        load_audio(path), TranscribeOptions(beam_size=1)
    )
    assert "snow tomorrow" in " ".join(s.text for s in segments).lower()
    assert text.lower().startswith("the weather")


def test_cli_convert_no_check_and_errors(tiny_whisper_en, tmp_path, capsys):
    out = tmp_path / "ct2"
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "convert",
                "--model_path",
                str(tiny_whisper_en),
                "--output_dir",
                str(out),
                "--quantization",
                "int8",
                "--no_check",
            ]
        )
    assert exit_info.value.code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["quantization"] == "int8" and "parity" not in printed
    assert (out / "tokenizer.json").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", "--model_path", str(out), "--output_dir", str(tmp_path / "again")])
    assert exit_info.value.code == 2
    assert "CTranslate2 model" in capsys.readouterr().err
    with pytest.raises(ModelError, match="quantization"):
        convert_to_ct2(str(tiny_whisper_en), tmp_path / "x", "int4", check=False)
    assert not (tmp_path / "again").exists() and not (tmp_path / "x").exists()
