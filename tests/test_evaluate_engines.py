"""``evaluate`` through the deployed engines: stock, merged HF, CT2 int8 and GGML side by side."""

from __future__ import annotations

import csv
import json

import pytest

from whisper_tune.cli import main
from whisper_tune.corpus_text import ENGLISH_DOMAIN, ENGLISH_GENERAL
from whisper_tune.data.manifest import Utterance, write_manifest
from whisper_tune.eval_config import EvalConfig
from whisper_tune.evaluate import evaluate_models
from whisper_tune.synth import save_wav, synthesize

pytest.importorskip("pywhispercpp")

GENERAL = ENGLISH_GENERAL[-14:]
HELD_OUT = GENERAL + ENGLISH_DOMAIN[-2:]  # invented names: where the conversions can differ


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Sixteen English sentences never trained on (general, then domain), synthesised."""
    folder = tmp_path_factory.mktemp("held_out")
    utterances = [
        Utterance(str(save_wav(folder / f"{i}.wav", synthesize(text, "en", seed=i))), text)
        for i, text in enumerate(HELD_OUT)
    ]
    write_manifest(folder / "test.jsonl", utterances)
    write_manifest(folder / "short.jsonl", utterances[-3:])
    return folder / "test.jsonl"


def _short(manifest):
    return str(manifest.with_name("short.jsonl"))


@pytest.fixture(scope="module")
def deployed_models(tmp_path_factory):
    """tiny.en with merged LoRA adapters (a real, non-zero update), as a Hugging Face dir, a
    CTranslate2 int8 dir and a GGML q5_0 file."""
    import torch
    from peft import LoraConfig, get_peft_model

    from whisper_tune.convert.ct2_export import convert_to_ct2
    from whisper_tune.convert.ggml import export_ggml
    from whisper_tune.merge import merge_lora
    from whisper_tune.models import load_whisper
    from whisper_tune.resolve import resolve_hf_model

    folder = tmp_path_factory.mktemp("deployed")
    torch.manual_seed(0)
    config = LoraConfig(
        r=8, lora_alpha=8, target_modules=["q_proj", "v_proj", "fc1"], init_lora_weights=False
    )
    peft_model = get_peft_model(load_whisper(resolve_hf_model("tiny.en")), config)
    with torch.no_grad():  # a small update, as a short fine-tune leaves
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.05)
    peft_model.save_pretrained(folder / "adapter")
    merged = merge_lora(folder / "adapter", folder / "models", base_model="tiny.en")
    ct2 = folder / "ct2-int8"
    convert_to_ct2(str(merged), ct2, quantization="int8", check=False)
    ggml = folder / "ggml-q5_0.bin"
    export_ggml(merged, ggml, quantize="q5_0")
    return {"merged": str(merged), "ct2": str(ct2), "ggml": str(ggml)}


@pytest.mark.slow
@pytest.mark.timeout(2400)  # four real models over sixteen clips, on a shared CPU
def test_four_models_in_one_evaluate_call(held_out, deployed_models, tmp_path, capsys):
    out = tmp_path / "report"
    models = ["tiny.en", deployed_models["merged"], deployed_models["ct2"], deployed_models["ggml"]]
    with pytest.raises(SystemExit) as done:
        main(
            ["evaluate", "--test_data", str(held_out), "--model_path", *models]
            + ["--num_workers", "0", "--output_dir", str(out)]
        )
    assert done.value.code == 0
    printed = capsys.readouterr().out
    assert "| model | engine | wer |" in printed  # the table, WER by default for English

    table = json.loads((out / "comparison.json").read_text())
    assert [row["model"] for row in table] == models
    assert [row["engine"] for row in table] == ["ct2", "transformers", "ct2", "whispercpp"]
    assert {row["normalization"] for row in table} == {"whisper-english"}
    assert all(row["rtf"] > 0 and row["peak_rss_mb"] > 50 for row in table)
    stock, merged, int8, q5 = table
    # what each engine loaded: float32 safetensors > CTranslate2 int8 > GGML q5_0
    assert merged["size_mb"] > 2 * int8["size_mb"] > 2 * q5["size_mb"] > 0
    assert (out / "comparison.md").read_text().count("\n") == 6

    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "tiny.en" and summary["metric"] == "wer"
    assert [round(m["score"], 4) for m in summary["models"]] == [row["wer"] for row in table]
    with (out / "utterances.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(HELD_OUT)
    columns = [c for c in rows[0] if c.startswith("hypothesis_")]
    assert len(columns) == 4
    # real transcripts: every model understood the general sentences...
    general = rows[: len(GENERAL)]
    for column in columns:
        for row in general:
            assert row[column].split()[:2] == row["reference"].split()[:2], (column, row)
    # ... and the models' transcripts differ (the scores are not one model's copied)
    assert len({tuple(row[c] for row in rows) for c in columns}) > 1
    assert all(row["wer"] > 0 for row in table), "the invented names cost every model"
    # on the general held-out sentences the deployed conversions score like the merged
    # model they came from: within 2 WER points (WER over those rows, from the CSV)
    units = sum(int(row["reference_length"]) for row in general)
    wers = [sum(int(row["errors" + c[10:]]) for row in general) / units for c in columns[1:]]
    assert max(wers) - min(wers) <= 0.02, (wers, table)


def test_normalisation_and_metric_follow_the_language(held_out, tmp_path):
    """English: Whisper's normaliser by default (case and "Dr." do not count); off: case-fold."""
    base = dict(test_data=_short(held_out), num_workers=0, model_path=("tiny.en",))
    (default,) = evaluate_models(EvalConfig(**base, output_dir=str(tmp_path / "a")), False)
    (plain,) = evaluate_models(
        EvalConfig(**base, english_normalizer=False, output_dir=str(tmp_path / "b")), False
    )
    (cer,) = evaluate_models(
        EvalConfig(**base, metric="cer", output_dir=str(tmp_path / "c")), False
    )
    assert default.metric == "wer" and cer.metric == "cer"
    assert default.normalization == "whisper-english"
    assert plain.normalization == "casefold, no punctuation, simplified Chinese"
    assert all(r.reference == r.reference.lower() for r in plain.rows)
    assert all("," not in r.reference for r in default.rows + plain.rows)
    assert [r.hypothesis for r in cer.rows] == [r.hypothesis for r in default.rows]
    assert cer.reference_units > default.reference_units  # characters, not words


def test_english_only_model_on_a_chinese_manifest_is_a_clear_error(chinese_clip, tmp_path, capsys):
    path, text = chinese_clip
    manifest = tmp_path / "zh.jsonl"
    write_manifest(manifest, [Utterance(str(path), text, language="zh")])
    with pytest.raises(SystemExit) as done:
        main(["evaluate", "--test_data", str(manifest), "--model_path", "tiny.en"])
    assert done.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "English-only" in error and "zh" in error


def test_a_file_that_is_not_ggml_is_a_clear_error(held_out, tmp_path, capsys):
    fake = tmp_path / "ggml-model.bin"
    fake.write_bytes(b"not a model" * 10)
    with pytest.raises(SystemExit) as done:
        main(["evaluate", "--test_data", _short(held_out), "--model_path", str(fake)])
    assert done.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "not a whisper.cpp GGML model" in error
