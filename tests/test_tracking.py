"""Experiment tracking (--report_to) through the Trainer's integrations, progress lines in a
log, and finetune's closing summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from whisper_tune.cli import main
from whisper_tune.errors import WhisperTuneError


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("track")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(4):
        soundfile.write(root / f"c{i}.wav", 0.1 * rng.standard_normal(16000), 16000)
        lines.append(json.dumps({"audio": {"path": f"c{i}.wav"}, "sentence": "hello there"}))
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    return root / "train.jsonl"


def test_trackers_log_the_run(manifest, tmp_path, tiny_whisper_en, finetune_config, monkeypatch):
    """One short run logged to a local MLflow file store (read back through MLflow's client),
    TensorBoard, and Weights & Biases in offline mode (when installed) at once."""
    mlflow = pytest.importorskip("mlflow")
    from whisper_tune.train.trainer import finetune

    store = f"file://{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 prefers a database
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "whisper-tune-test")
    for name, value in (("MODE", "offline"), ("DIR", tmp_path), ("SILENT", "true")):
        monkeypatch.setenv(f"WANDB_{name}", str(value))
    wandb = _installed("wandb")
    trackers = ("mlflow", "tensorboard") + (("wandb",) if wandb else ())
    config = finetune_config(
        manifest, tiny_whisper_en, tmp_path / "out", max_steps=3, freeze_encoder=True,
        per_device_train_batch_size=2, report_to=trackers,
    )  # fmt: skip
    result = finetune(config)
    assert set(result.tracking) == set(trackers)
    assert list((tmp_path / "out").rglob("events.out.tfevents*"))  # TensorBoard wrote too

    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("whisper-tune-test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id in result.tracking["mlflow"]
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == [1, 2, 3]  # logging_steps 1
    assert all(np.isfinite(m.value) for m in losses)
    assert run.data.params["learning_rate"] == "0.01"

    if wandb:
        wandb.finish()  # what the end of the process does for the CLI
        (log,) = (tmp_path / "wandb").glob("offline-run-*/*.wandb")  # for `wandb sync` later;
        records = log.read_bytes()  # this wandb has no reader: its records hold metric names
        assert b"train/loss" in records and b"train/learning_rate" in records


def _installed(name: str):
    try:
        return __import__(name)
    except ImportError:
        return None


def test_report_to_is_checked(manifest, tmp_path, finetune_config):
    from whisper_tune.train.trainer import finetune

    config = finetune_config(manifest, "tiny.en", tmp_path, report_to=("none", "mlflow"))
    with pytest.raises(WhisperTuneError, match="'none' goes alone"):
        finetune(config)


def test_finetune_into_a_file_prints_progress_and_a_summary(
    manifest, tmp_path, tiny_whisper_en, capsys
):
    """stdout is not a terminal here (as in a log file): plain progress lines, no bar."""
    argv = ["finetune", "--train_data", str(manifest), "--base_model", str(tiny_whisper_en)]
    argv += ["--output_dir", str(tmp_path), "--max_steps", "3", "--num_workers", "0"]
    argv += ["--per_device_train_batch_size", "2"]
    with pytest.raises(SystemExit) as exit_code:
        main(argv)
    assert exit_code.value.code == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    # default --logging_steps 100: no loss logged yet at step 1; the last step logs the final
    assert lines[0].startswith("step 1/3 (33%), loss -, ") and "samples/s, ETA 0:" in lines[0]
    assert lines[-1].startswith("step 3/3 (100%), loss -, ")
    assert "{'loss'" not in out  # not the Trainer's raw log dicts
    assert "tensorboard: " + str(tmp_path) in out
    best = tmp_path / "tiny_whisper_en0" / "checkpoint-best"
    assert f"next: whisper-tune merge --lora_model {best}" in out
