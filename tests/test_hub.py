"""``whisper-tune push``: the upload folder and its model card, checked with huggingface_hub's
own card parser; the upload itself needs the network (tested up to the call)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from huggingface_hub import ModelCard

from whisper_tune.cli import main
from whisper_tune.errors import WhisperTuneError
from whisper_tune.hub import PushConfig, push


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, tiny_whisper_en, finetune_config):
    """A 2-step fine-tune of the tiny random model, merged, converted to CTranslate2 and
    evaluated beside the stock tiny.en: ``(merged dir, evaluate report dir)``."""
    from whisper_tune.convert.ct2_export import convert_to_ct2
    from whisper_tune.eval_config import EvalConfig
    from whisper_tune.evaluate import evaluate_models
    from whisper_tune.merge import merge_lora
    from whisper_tune.train.trainer import finetune

    root = tmp_path_factory.mktemp("push")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(4):
        soundfile.write(root / f"c{i}.wav", 0.1 * rng.standard_normal(16000), 16000)
        record = {"audio": {"path": f"c{i}.wav"}, "sentence": "hello there", "language": "en"}
        lines.append(json.dumps(record))
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    config = finetune_config(
        root / "train.jsonl", tiny_whisper_en, root / "out", max_steps=2, freeze_encoder=True,
        per_device_train_batch_size=2, language="en",
    )  # fmt: skip
    result = finetune(config)
    merged = merge_lora(result.best_checkpoint, root / "models", local_files_only=True)
    convert_to_ct2(str(merged), root / "ct2", "int8", check=False, local_files_only=True)
    evaluate_models(
        EvalConfig(
            test_data=str(root / "train.jsonl"), model_path=("tiny.en", str(root / "ct2")),
            num_workers=0, output_dir=str(root / "eval"), language="en",
        ),
        progress=False,
    )  # fmt: skip
    return merged, root / "eval"


def test_push_dry_run_writes_a_card_with_the_scores(tuned, tmp_path, capsys):
    merged, report = tuned
    folder = tmp_path / "upload"
    argv = ["push", "--model_path", str(merged), "--repo_id", "someone/whisper-tiny-test"]
    argv += ["--eval_report", str(report), "--output_dir", str(folder), "--dry_run"]
    with pytest.raises(SystemExit) as exit_code:
        main(argv)
    assert exit_code.value.code == 0
    out = capsys.readouterr().out
    assert "would upload" in out and "README.md" in out and "model.safetensors" in out

    card = ModelCard.load(folder / "README.md", ignore_metadata_errors=False)
    summary = json.loads((report / "summary.json").read_text())
    scores = {row["model"]: row["score"] for row in summary["models"]}
    (result,) = card.data.eval_results  # model-index: the pushed model's score only
    assert result.task_type == "automatic-speech-recognition"
    assert result.metric_type == "wer"
    assert result.metric_value == round(100 * scores[str(report.parent / "ct2")], 2)
    assert card.data.base_model is None  # a local folder is no Hub id; the text names it
    assert card.data.library_name == "transformers"
    assert card.data.language == ["en"] and card.data.pipeline_tag == (
        "automatic-speech-recognition"
    )
    assert "model-index" in card.content and "name: someone/whisper-tiny-test" in card.content
    assert "| `tiny.en` |" in card.text  # the base model's "before" row
    assert "train_samples" in card.text and "`" + str(report.parent / "train.jsonl") in card.text


def test_push_without_dry_run_reaches_the_upload(tuned, tmp_path, monkeypatch):
    """Offline, the upload (huggingface_hub's create_repo/upload_folder) fails in one line."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    merged, _ = tuned
    config = PushConfig(str(merged), "someone/x", output_dir=str(tmp_path / "up"))
    with pytest.raises(WhisperTuneError, match="upload to someone/x failed"):
        push(config)
    assert (tmp_path / "up" / "README.md").is_file()


def test_base_model_ids():
    from whisper_tune.hub import hub_model_id

    assert hub_model_id("tiny.en") == "openai/whisper-tiny.en"
    assert hub_model_id("openai/whisper-small") == "openai/whisper-small"
    assert hub_model_id("/tmp") is None and hub_model_id(None) is None


def test_push_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(WhisperTuneError, match="not a Hugging Face model"):
        push(PushConfig(str(tmp_path), "someone/x", dry_run=True))
    with pytest.raises(WhisperTuneError, match="expected user/name"):
        push(PushConfig(str(tmp_path), "no-slash", dry_run=True))
