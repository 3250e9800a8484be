"""The benchmarks: each ``--smoke`` run yields positive, finite numbers and real transcripts;
the shared helpers classify profiles and refuse nonsense."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from whisper_tune.errors import WhisperTuneError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def bench_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))


def _finite_positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_transcribe_smoke(tmp_path):
    from bench import transcribe

    out = tmp_path / "t.json"
    record = transcribe.main(["--smoke", "--output", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(record))
    speed = {(r["set"], r["config"]): r for r in record["speed"]}
    for key in ("wt-int8", "fw-int8", "wt-f32", "hf-f32"):
        row = speed[("short", key)]
        assert _finite_positive(row["rtf_median"]) and row["transcript_chars"] > 10
        assert row["wer"] < 0.3, row  # a clean synthetic sentence is transcribed, not garbled
    for key in ("wt-int8", "fw-int8", "wt-int8-b8", "fw-int8-b8"):
        assert speed[("long", key)]["wer"] < 0.3
    assert record["audio"]["long_seconds"] > 30  # more than one window: batching has work
    many = {r["config"]: r for r in record["many"]}
    assert set(many) == {"cli-folder", "cli-folder-packed", "fw-loop"}
    assert all(r["wer"] < 0.3 and _finite_positive(r["median_s"]) for r in many.values())
    for row in record["memory"]:
        assert 50 < row["peak_rss_mib"] < 8000, row
    goals = {g["goal"]: g for g in record["goals"]}
    assert any("overhead" in name for name in goals)
    for what in ("folder", "folder --pack_clips"):
        worse = goals.pop(f"many-2: {what} WER points worse than the loop")["value"]
        assert math.isfinite(worse) and abs(worse) < 30
    assert all(_finite_positive(g["value"]) for g in goals.values())


@pytest.mark.slow
def test_finetune_smoke(tmp_path):
    from bench import finetune

    out = tmp_path / "f.json"
    record = finetune.main(["--smoke", "--output", str(out)])
    assert json.loads(out.read_text())["name"] == "finetune"
    rows = {r["trainer"]: r for r in record["trainers"]}
    assert set(rows) == set(finetune.TRAINERS[:3])
    for row in rows.values():
        assert _finite_positive(row["samples_per_s_median"])
        assert _finite_positive(row["heldout_loss"]) and row["heldout_loss"] < 5
        assert 0 <= row["heldout_wer"] < 1.5
        assert 100 < row["peak_rss_mib_median"] < 16000
    assert all(_finite_positive(v) for v in record["ratios"].values())


@pytest.mark.slow
def test_evaluate_smoke_through_the_cli(tmp_path):
    out = tmp_path / "e.json"
    command = [sys.executable, "-m", "whisper_tune", "bench", "evaluate", "--smoke"]
    done = subprocess.run(
        [*command, "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| extractor" in done.stdout  # the tables were printed
    record = json.loads(out.read_text())
    assert {r["case"] for r in record["evaluation"]} >= {
        *("b1-w0", "b16-w2", "ct2-int8-loop", "ct2-old-defaults", "ct2-defaults", "ct2-packed")
    }
    assert all(r["wer"] < 0.3 and r["utterances"] == 2 for r in record["evaluation"])
    shapes = {tuple(r["shape"]) for r in record["features"] if r["clips"] == 4}
    assert shapes and all(shape[:2] == (4, 80) for shape in shapes)


@pytest.mark.slow
def test_server_smoke(tmp_path):
    from bench import server

    record = server.main(["--smoke", "--output", str(tmp_path / "s.json")])
    modes = {(r["mode"], r["clients"]) for r in record["levels"]}
    assert modes == {("server", 1), ("server", 2), ("direct", 1), ("direct", 2)}
    assert all(r["p95_s"] >= r["p50_s"] > 0 for r in record["levels"])
    assert record["server_peak_rss_mib"] > 50


@pytest.mark.slow
def test_serve_models_smoke(tmp_path):
    from bench import serve_models

    record = serve_models.main(["--smoke", "--output", str(tmp_path / "s.json")])
    assert record["setup"]["models"] == ["tiny.en", "tiny-copy"]
    assert record["overall"]["requests"] >= 2 and record["overall"]["errors"] == 0
    assert all(s["requests"] >= 1 for s in record["by_model"].values())
    assert sum(record["metrics_match"].values()) == record["overall"]["requests"] + 2  # warm-ups


@pytest.mark.slow
def test_streaming_smoke(tmp_path):
    from bench import streaming

    record = streaming.main(["--smoke", "--output", str(tmp_path / "s.json")])
    assert [(r["streams"], r["beam_size"]) for r in record["levels"]] == [(1, 1), (2, 1)]
    assert all(r["p95_lag_s"] >= r["median_lag_s"] > 0 for r in record["levels"])
    assert all(r["wer_vs_offline"] <= 0.2 for r in record["levels"])


@pytest.mark.slow
def test_ray_smoke(tmp_path):
    pytest.importorskip("ray.data")
    from bench import ray as ray_bench

    record = ray_bench.main(["--smoke", "--output", str(tmp_path / "r.json")])
    rows = {r["config"]: r for r in record["rows"]}
    assert set(rows) == {"local", "ray-2"}
    for row in rows.values():  # every clip written and recognised, through Ray too
        assert row["files_written"] == 2 and row["wer"] < 0.3, row
        assert _finite_positive(row["files_per_s_median"])
    assert _finite_positive(record["ratios"][0]["value"])


@pytest.mark.slow
def test_gpu_script_smoke_on_cpu(tmp_path):
    """bench/gpu.py, prepared for a CUDA machine, runs every part on the CPU: training beside
    the seed's recipe, merge and held-out WER, transcription, a real server."""
    from bench import gpu

    record = gpu.main(["--device", "cpu", "--smoke", "--output", str(tmp_path / "g.json")])
    trainers = [r["trainer"] for r in record["finetune"]]
    assert trainers == ["whisper-tune fp32", "seed recipe (Seq2SeqTrainer + PEFT)"]
    assert not any("error" in r for r in record["finetune"] + record["transcribe"])
    assert record["finetune"][0]["heldout_wer"] < 0.5
    hows = [r["config"] for r in record["transcribe"]]
    assert hows == ["ct2 int8", "ct2 int8 batched long-form", "ct2 int8 many files at once"]
    assert all(_finite_positive(r["rtf"]) and r["wer"] < 0.5 for r in record["transcribe"])
    (served,) = record["serve"]
    assert served["requests"] == 1 and served["wer"] < 0.5
    assert gpu.precisions("cpu") == ["fp32"] and record["skipped"] == []


def test_profile_phases_from_py_spy_stacks():
    from bench.finetune import phase_shares

    raw = "\n".join(
        [
            "<module> (x.py:1);Trainer.train (transformers/trainer.py:9);"
            "WhisperEncoder.forward (transformers/models/whisper/modeling_whisper.py:5) 6",
            "<module> (x.py:1);Tensor.backward (torch/_tensor.py:3);"
            "_engine_run_backward (torch/autograd/graph.py:7) 3",
            "Thread.run (threading.py:1);Condition.wait (threading.py:331) 50",  # idle helper
            "<module> (x.py:1);SeedDataset.__getitem__ (bench/finetune.py:1);"
            "WhisperFeatureExtractor.__call__ (feature_extraction_whisper.py:2) 1",
        ]
    )
    shares = phase_shares(raw)
    assert shares["encoder forward"] == 0.6
    assert shares["backward"] == 0.3
    assert shares["feature extraction"] == 0.1
    assert sum(shares.values()) == pytest.approx(1.0)


def test_side_by_side_rotates_and_summarises():
    from bench.harness import side_by_side

    calls = []
    timings = side_by_side(
        {"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2},
        repeats=2,
        warmup=1,
    )
    assert calls == ["a", "b", "a", "b", "b", "a"]  # warm-up, then rotated rounds
    assert timings["b"].output == 2 and len(timings["a"].seconds) == 2
    assert timings["a"].min <= timings["a"].median


def test_require_positive_names_the_bad_number():
    from bench.harness import BenchError, require_positive

    require_positive({"x": 1.5}, ["x"], "case")
    for bad in (0, -1, float("nan"), float("inf"), None):
        with pytest.raises(BenchError, match="case: x"):
            require_positive({"x": bad}, ["x"], "case")


def test_cli_runs_the_checkouts_benchmark_in_a_child_process(tmp_path):
    """From any folder, ``whisper-tune bench NAME ARGS`` is ``python -m bench.NAME ARGS`` run
    from this checkout (found through the editable install), with its exit status."""
    command = [sys.executable, "-m", "whisper_tune", "bench", "transcribe", "--help"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--smoke" in done.stdout and "bench.transcribe" in done.stdout
    bad = subprocess.run(
        [*command[:-1], "--no-such-option"], cwd=tmp_path, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--no-such-option" in bad.stderr


def test_cli_explains_where_the_benchmarks_are(tmp_path, monkeypatch):
    import whisper_tune
    from whisper_tune.cli.bench import find_bench_root

    assert find_bench_root() == ROOT  # from this checkout (cwd or the editable install)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(whisper_tune, "__file__", str(tmp_path / "a" / "b" / "__init__.py"))
    with pytest.raises(WhisperTuneError, match="source checkout"):
        find_bench_root()


@pytest.mark.slow
@pytest.mark.slow
def test_audio_ctx_smoke(tmp_path):
    """bench/audio_ctx.py end to end: training clips labelled by stock tiny.en (whisper-tune
    label), one --dynamic_audio_ctx step, merge, int8 conversion, then every (model,
    --audio_ctx) configuration timed and scored on held-out clips by length."""
    from bench import audio_ctx

    record = audio_ctx.main(["--smoke", "--keep", str(tmp_path), "--output", str(tmp_path / "a")])
    assert record["tuning"]["steps"] == 1 and "whisper-tune label" in record["tuning"]["recipe"]
    labelled = [json.loads(line) for line in (tmp_path / "train.jsonl").open()]
    assert labelled and all(line["sentence"] and line["sentences"] for line in labelled)
    rows = {(r["model"], r["audio_ctx"]): r for r in record["rows"]}
    assert set(rows) == set(audio_ctx.CONFIGS)
    assert record["clips_per_bucket"]["all"] >= 3
    assert rows[("stock", "full")]["wer"]["all"] < 0.3  # real transcripts, not garbage
    for row in rows.values():
        assert all(_finite_positive(v) for v in row["seconds"].values()), row
    assert _finite_positive(record["goal"]["speedup"])


def test_forgetting_smoke_on_tiny_random_models(tmp_path, tiny_whisper_multi):
    """bench/forgetting.py end to end on a tiny random multilingual model: the seed's plain
    recipe and a replay + KL run trained, merged, converted to int8 and scored beside the stock
    model on every column (the other language's WER and the language ID included)."""
    from bench import forgetting

    model = tmp_path / "random-base"
    shutil.copytree(tiny_whisper_multi, model)
    generation = json.loads((model / "generation_config.json").read_text())
    # a random model talks until the length limit: keep the stock model's decodes short
    generation["max_length"] = 24
    (model / "generation_config.json").write_text(json.dumps(generation))
    out = tmp_path / "f.json"
    argv = ["--smoke", "--cases", "zh", "--variants", "plain", "default+replay+kl"]
    record = forgetting.main([*argv, "--model", "zh", str(model), "--output", str(out)])
    assert json.loads(out.read_text())["name"] == "forgetting"
    result = record["cases"]["zh"]
    assert result["metric"] == "cer" and result["clips"]["replay"] == 1
    rows = {r["variant"]: r for r in result["rows"]}
    assert list(rows) == ["stock", "plain", "default+replay+kl"]
    assert rows["plain"]["warmup_steps"] == 1  # the seed's 50 steps, capped below the run
    assert rows["default+replay+kl"]["options"]["kl_weight"] == forgetting.KL_WEIGHT
    for row in rows.values():
        assert all(row[k] >= 0 for k in ("domain", "general", "real", "other")), row
        assert 0 <= row["language_id"] <= 1 and row["real_language_id"].endswith("/1")
    assert all(_finite_positive(rows[v]["train_seconds"]) for v in ("plain", "default+replay+kl"))
