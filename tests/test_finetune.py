"""The spine: manifest → LoRA/AdaLoRA fine-tune → merge → reload without PEFT → evaluate."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from whisper_tune.audio import write_wav
from whisper_tune.cli import main
from whisper_tune.errors import WhisperTuneError
from whisper_tune.synth import silence, synthesize
from whisper_tune.text import normalize_english
from whisper_tune.train.trainer import finetune

SENTENCES = ["the blue kettle is hot", "open the north window", "seven green apples"]


@pytest.fixture(scope="module")
def speech_manifest(tmp_path_factory) -> Path:
    """Three short synthetic English clips plus one silent no-speech clip, as JSONL."""
    folder = tmp_path_factory.mktemp("speech")
    (folder / "wav").mkdir()
    lines = []
    for i, text in enumerate(SENTENCES):
        write_wav(folder / "wav" / f"{i}.wav", synthesize(text, "en", seed=i))
        lines.append({"audio": {"path": f"wav/{i}.wav"}, "sentence": text})
    write_wav(folder / "wav" / "quiet.wav", silence(1.5))
    lines.append({"audio": {"path": "wav/quiet.wav"}, "sentence": ""})
    manifest = folder / "train.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return manifest


@pytest.fixture
def finetune_config(finetune_config):
    """Twelve steps without warm-up, saving and evaluating every six."""
    return partial(finetune_config, max_steps=12, warmup_steps=0, save_steps=6, eval_steps=6)


def test_finetune_merge_reload_evaluate(
    speech_manifest, tiny_whisper_en, tmp_path, finetune_config
):
    result = finetune(
        finetune_config(
            speech_manifest, tiny_whisper_en, tmp_path / "out", test_data=str(speech_manifest)
        )
    )
    assert result.steps == 12
    assert result.last_loss < result.first_loss
    assert result.best_eval_loss is not None
    for checkpoint in (result.final_checkpoint, result.best_checkpoint):
        assert (checkpoint / "adapter_model.safetensors").is_file()
        run = json.loads((checkpoint / "run_config.json").read_text())
        assert run["base_model"] == str(tiny_whisper_en) and run["lora_r"] == 8
    assert (result.run_dir / "checkpoint-6" / "run_config.json").is_file()
    # checkpoint-best is the evaluated step with the lowest WER (the earliest on a tie) in the
    # run's own eval history, and holds that step's adapter byte for byte
    history = json.loads((result.best_checkpoint / "run_config.json").read_text())["eval_history"]
    scored = [r for r in history if r["metric"] is not None]
    lowest = min(scored, key=lambda r: (r["metric"], r["step"]))
    assert result.metric == "wer" and len(scored) == 2 and result.best_step == lowest["step"]
    adapter = "adapter_model.safetensors"
    chosen = result.run_dir / f"checkpoint-{lowest['step']}" / adapter
    assert (result.best_checkpoint / adapter).read_bytes() == chosen.read_bytes(), history
    assert list(result.run_dir.glob("runs/*/events.out.tfevents*")), "TensorBoard logs"

    main_args = [
        "merge",
        "--lora_model",
        str(result.best_checkpoint),
        "--output_dir",
        str(tmp_path / "models"),
    ]
    with pytest.raises(SystemExit) as done:
        main(main_args)
    assert done.value.code == 0
    merged = tmp_path / "models" / f"{Path(tiny_whisper_en).name}-finetune"
    assert not list((tmp_path / "models").glob(".*tmp")), "no temp dir left behind"

    # plain transformers, no PEFT: keys must be the base Whisper names
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    model = WhisperForConditionalGeneration.from_pretrained(merged)
    assert not any("lora" in name for name in model.state_dict())
    WhisperProcessor.from_pretrained(merged)

    report_dir = tmp_path / "report"
    with pytest.raises(SystemExit) as done:
        main(
            [
                "evaluate",
                "--test_data",
                str(speech_manifest),
                "--model_path",
                str(merged),
                "--metric",
                "wer",
                "--num_workers",
                "0",
                "--output_dir",
                str(report_dir),
            ]
        )
    assert done.value.code == 0
    summary = json.loads((report_dir / "summary.json").read_text())
    assert summary["metric"] == "wer" and summary["utterances"] == 4
    assert summary["audio_seconds"] > 3 and summary["wall_seconds"] > 0
    assert summary["rtf"] == pytest.approx(
        summary["wall_seconds"] / summary["audio_seconds"], rel=0.01
    )
    assert summary["score"] == pytest.approx(summary["errors"] / summary["reference_units"])
    with (report_dir / "utterances.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    # The report shows the references as scored: Whisper's English normaliser by default.
    assert [r["reference"] for r in rows[:3]] == [normalize_english(s) for s in SENTENCES]
    assert rows[2]["reference"] == "7 green apples"
    assert set(rows[0]) == {
        "id",
        "audio",
        "reference",
        "hypothesis",
        "errors",
        "reference_length",
        "duration",
    }


def test_adalora_budget_step_changes_rank_pattern(
    speech_manifest, tiny_whisper_en, tmp_path, finetune_config
):
    result = finetune(
        finetune_config(
            speech_manifest,
            tiny_whisper_en,
            tmp_path / "out",
            use_adalora=True,
            max_steps=20,
            save_steps=20,
        )
    )
    config = json.loads((result.final_checkpoint / "adapter_config.json").read_text())
    assert config["peft_type"] == "ADALORA"
    pattern = config["rank_pattern"]
    assert pattern, "update_and_allocate never ran: no rank pattern was allocated"
    kept = [sum(mask) for mask in pattern.values()]
    assert all(len(mask) == 12 for mask in pattern.values())
    assert sum(kept) < 12 * len(kept), "the rank budget was not reduced"
    assert len(set(kept)) > 1 or sum(kept) <= 4 * len(kept)


def _logged_steps(events_dir: Path) -> list[int]:
    """The steps at which one run's TensorBoard events record a training loss."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(events_dir))
    events.Reload()
    return [event.step for event in events.Scalars("train/loss")]


def test_resume_continues_from_the_checkpoint(
    speech_manifest, tiny_whisper_en, tmp_path, caplog, finetune_config
):
    first = finetune(
        finetune_config(speech_manifest, tiny_whisper_en, tmp_path / "out", max_steps=6)
    )
    checkpoint = first.run_dir / "checkpoint-6"
    runs_before = set((first.run_dir / "runs").iterdir())
    assert [_logged_steps(folder) for folder in runs_before] == [[1, 2, 3, 4, 5, 6]]
    resumed = finetune(
        finetune_config(
            speech_manifest,
            tiny_whisper_en,
            tmp_path / "out",
            max_steps=9,
            learning_rate=5e-3,  # may differ: a warning
            resume_from_checkpoint=str(checkpoint),
        )
    )
    assert resumed.steps == 9
    # only steps 7-9 ran (a fresh run logs 1-9); the history up to 6 came from the checkpoint
    (new_run,) = set((first.run_dir / "runs").iterdir()) - runs_before
    assert _logged_steps(new_run) == [7, 8, 9]
    assert resumed.first_loss == first.first_loss
    assert resumed.last_loss < first.first_loss
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("learning_rate = 0.005 (checkpoint: 0.01)" in w for w in warnings), warnings


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"lora_r": 4}, "--lora_r 4 (checkpoint: 8)"),
        ({"target_modules": ("q_proj", "v_proj")}, "--target_modules"),
        ({"timestamps": True}, "--timestamps True (checkpoint: False)"),
        ({"language": "fr"}, "--language 'fr' (checkpoint: None)"),
        ({"dynamic_audio_ctx": True}, "--dynamic_audio_ctx True (checkpoint: False)"),
        ({"base_model": "tiny_whisper_multi"}, "--base_model '"),
    ],
)
def test_resume_refuses_other_adapter_settings(
    speech_manifest,
    tiny_whisper_en,
    tmp_path,
    request,
    change,
    named,
    finetune_config,
):
    checkpoint = tmp_path / "checkpoint-6"
    checkpoint.mkdir()
    finetune_config(speech_manifest, tiny_whisper_en, tmp_path).save(checkpoint, global_step=6)
    config = finetune_config(
        speech_manifest, tiny_whisper_en, tmp_path, resume_from_checkpoint=str(checkpoint)
    )
    if "base_model" in change:  # another model: a fixture's folder
        change = {"base_model": str(request.getfixturevalue(change["base_model"]))}
    with pytest.raises(WhisperTuneError) as refused:
        finetune(replace(config, **change))
    message = str(refused.value)
    assert str(checkpoint / "run_config.json") in message and named in message, message


def _cli_error(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [
        line[line.index("whisper-tune ") :]
        for line in err.splitlines()
        if "whisper-tune finetune: error:" in line
    ]
    assert len(errors) == 1, err
    return errors[0]


def test_bad_inputs_give_one_line_errors(speech_manifest, tiny_whisper_en, tmp_path, capsys):
    base = [
        "finetune",
        "--base_model",
        str(tiny_whisper_en),
        "--output_dir",
        str(tmp_path / "o"),
        "--num_workers",
        "0",
        "--max_steps",
        "1",
    ]
    good = speech_manifest.read_text().splitlines()

    folder = speech_manifest.parent  # relative audio paths resolve against it
    malformed = folder / "malformed.jsonl"
    malformed.write_text(good[0] + "\n{not json\n")
    assert f"{malformed}:2: not valid JSON" in _cli_error(
        base + ["--train_data", str(malformed)], capsys
    )

    missing = folder / "missing.jsonl"
    missing.write_text(good[0] + "\n" + json.dumps({"audio": {"path": "x.wav"}}) + "\n")
    assert f"{missing}:2: missing field 'sentence'" in _cli_error(
        base + ["--train_data", str(missing)], capsys
    )

    corrupt_wav = tmp_path / "corrupt.wav"
    corrupt_wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    corrupt = tmp_path / "corrupt.jsonl"
    corrupt.write_text(
        json.dumps({"audio": {"path": str(corrupt_wav)}, "sentence": "hi", "duration": 1.0}) + "\n"
    )
    message = _cli_error(base + ["--train_data", str(corrupt)], capsys)
    assert f"{corrupt}:1:" in message and "corrupt.wav" in message

    message = _cli_error(base + ["--train_data", str(speech_manifest), "--fp16"], capsys)
    assert "--fp16 needs a CUDA GPU" in message


def test_skip_bad_trains_on_the_rest_and_says_what_it_skipped(
    speech_manifest, tiny_whisper_en, tmp_path, capsys
):
    good = speech_manifest.read_text().splitlines()
    gone = json.dumps({"audio": {"path": "wav/gone.wav"}, "sentence": "lost"})
    bad = speech_manifest.parent / "with_bad_lines.jsonl"  # relative paths resolve there
    bad.write_text("\n".join([good[0], gone, "{not json", *good[1:]]) + "\n")
    base = [
        *("finetune", "--train_data", str(bad), "--base_model", str(tiny_whisper_en)),
        *("--output_dir", str(tmp_path / "o"), "--num_workers", "0", "--max_steps", "2"),
        *("--per_device_train_batch_size", "2", "--lora_r", "4"),
    ]
    message = _cli_error(base, capsys)
    assert f"{bad}:2: " in message and "gone.wav: audio file not found" in message
    with pytest.raises(SystemExit) as done:
        main([*base, "--skip_bad"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    summary = next(line for line in out.splitlines() if line.startswith("train data"))
    assert "4/6 utterances kept" in summary and "2 bad lines skipped" in summary, summary
    assert f"{bad}:2: " in summary and f"{bad}:3: not valid JSON" in summary, summary
    checkpoint = tmp_path / "o" / Path(tiny_whisper_en).name / "checkpoint-final"
    assert json.loads((checkpoint / "run_config.json").read_text())["global_step"] == 2


def test_augment_config_is_applied_while_training(
    speech_manifest,
    tiny_whisper_en,
    tmp_path,
    monkeypatch,
    finetune_config,
):
    """A speed step at probability 1 runs on every training sample and what it returns is
    what the model trains on: the first logged loss differs from the same run without it."""
    from whisper_tune.data import augment

    steps = tmp_path / "augment.json"
    rates = {"min_speed_rate": 0.6, "max_speed_rate": 0.6, "num_rates": 1}
    steps.write_text(json.dumps([{"type": "speed", "params": rates, "prob": 1.0}]))
    lengths = []
    speed = augment.Speed.__call__

    def counted(self, audio, rng, rate):
        slower = speed(self, audio, rng, rate)
        lengths.append((len(audio), len(slower)))
        return slower

    monkeypatch.setattr(augment.Speed, "__call__", counted)
    plain = finetune(finetune_config(speech_manifest, tiny_whisper_en, tmp_path / "a", max_steps=2))
    assert lengths == []
    augmented = finetune(
        finetune_config(
            speech_manifest,
            tiny_whisper_en,
            tmp_path / "b",
            max_steps=2,
            augment_config_path=str(steps),
        )
    )
    assert len(lengths) == 2 * 4  # two steps of a batch of four
    assert all(after == pytest.approx(before / 0.6, abs=2) for before, after in lengths)
    # the random model's loss hardly depends on its input, but training on the CPU is
    # deterministic: the same samples give the very same loss, other samples another one
    assert augmented.first_loss != plain.first_loss


LAUNCHERS = {
    "torchrun": ["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531"],
    "accelerate": [
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(Path(__file__).parents[1] / "configs" / "accelerate_cpu_2proc.yaml"),
        "--main_process_port",
        "29532",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_cpu_processes_train_one_model(launcher, speech_manifest, tiny_whisper_en, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [
        sys.executable,
        *LAUNCHERS[launcher],
        "-m",
        "whisper_tune.cli",
        "finetune",
        "--train_data",
        str(speech_manifest),
        "--base_model",
        str(tiny_whisper_en),
        "--output_dir",
        str(tmp_path / "ddp"),
        "--max_steps",
        "3",
        "--per_device_train_batch_size",
        "2",
        "--num_workers",
        "0",
        "--lora_r",
        "4",
        "--save_steps",
        "3",
        "--learning_rate",
        "1e-2",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # the two processes share stdout, so their lines may interleave: match, don't split
    sums = dict(re.findall(r"rank (\d): trainable weight checksum (\S+?e[+-]\d+)", done.stdout))
    assert set(sums) == {"0", "1"}, done.stdout[-2000:]
    assert sums["0"] == sums["1"], "the two ranks ended with different weights"
    # rank 1 wrote nothing and says so, instead of naming checkpoints it does not have
    assert done.stdout.count("final checkpoint:") == 1
    assert "checkpoints: written by rank 0" in done.stdout
    run = json.loads(
        (
            tmp_path / "ddp" / Path(tiny_whisper_en).name / "checkpoint-final" / "run_config.json"
        ).read_text()
    )
    assert run["world_size"] == 2


def test_finetune_streams_a_sharded_corpus(
    speech_manifest, tiny_whisper_en, tmp_path, finetune_config
):
    from whisper_tune.data.prepare.sharding import write_shards

    shards = tmp_path / "shards"
    write_shards(speech_manifest, shards, samples_per_shard=2)
    assert len(list(shards.glob("*.tar"))) == 2
    result = finetune(
        finetune_config(
            shards,
            tiny_whisper_en,
            tmp_path / "out",
            max_steps=4,
            per_device_train_batch_size=2,
            shuffle_buffer=3,
        )
    )
    assert result.steps == 4
    assert (result.final_checkpoint / "adapter_model.safetensors").is_file()


def test_frozen_encoder_trains_decoder_adapters_on_cached_states(
    speech_manifest,
    tiny_whisper_en,
    tmp_path,
    capsys,
    finetune_config,
):
    result = finetune(
        finetune_config(
            speech_manifest,
            tiny_whisper_en,
            tmp_path / "out",
            freeze_encoder=True,
            test_data=str(speech_manifest),
        )
    )
    assert "encoding clips once" in capsys.readouterr().err
    assert result.last_loss < result.first_loss
    from safetensors import safe_open

    with safe_open(result.final_checkpoint / "adapter_model.safetensors", "pt") as weights:
        names = list(weights.keys())
    assert names and all(".decoder." in name for name in names)
    assert not any("encoder_attn.k_proj" in name or "encoder_attn.v_proj" in name for name in names)


def test_cached_frozen_layers_give_the_same_encoder_output(tiny_whisper_en):
    import torch

    from whisper_tune.models import load_whisper
    from whisper_tune.train.encoder_cache import encode_frozen_part, run_from_cached_states

    model = load_whisper(str(tiny_whisper_en)).eval()
    encoder = model.get_encoder()
    features = torch.randn(2, 80, 3000)
    with torch.no_grad():
        expected = encoder(features).last_hidden_state
        cached = encode_frozen_part(encoder, features, frozen_layers=1)
        run_from_cached_states(encoder, frozen_layers=1)
        resumed = encoder(cached).last_hidden_state
    torch.testing.assert_close(resumed, expected, rtol=1e-4, atol=1e-4)


def test_partly_frozen_encoder_trains_top_encoder_layers(
    speech_manifest,
    tiny_whisper_en,
    tmp_path,
    finetune_config,
):
    result = finetune(
        finetune_config(
            speech_manifest, tiny_whisper_en, tmp_path / "out", freeze_encoder_layers=1, max_steps=6
        )
    )
    assert result.last_loss < result.first_loss
    from safetensors import safe_open

    with safe_open(result.final_checkpoint / "adapter_model.safetensors", "pt") as weights:
        names = list(weights.keys())
    encoder_layers = {
        name.split(".encoder.layers.")[1].split(".")[0]
        for name in names
        if ".encoder.layers." in name
    }
    assert encoder_layers == {"1"}, "only the top encoder layer (of 2) gets adapters"
