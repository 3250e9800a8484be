"""Multi-node training: two "nodes" on this machine, one process each, rendezvous over TCP (gloo),
launched as the README says: torchrun (c10d rendezvous) and accelerate (the multi-node config).

Each node gets its own --output_dir and --save_on_each_node, as machines without shared
storage would; tests/multinode_worker.py records what each rank trained on.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from whisper_tune.audio import write_wav

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven")
WORKER = Path(__file__).with_name("multinode_worker.py")
ACCELERATE_CONFIG = Path(__file__).parents[1] / "configs" / "accelerate_multi_node.yaml"
STEPS, BATCH = 2, 2  # per rank: 2 steps of 2 = half the 8 clips


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Eight short tones, each with its own sentence, as a manifest."""
    folder = tmp_path_factory.mktemp("clips")
    lines = []
    for index, word in enumerate(WORDS):
        t = np.arange(int(16000 * (0.5 + 0.1 * index))) / 16000
        write_wav(folder / f"{index}.wav", (0.3 * np.sin(2 * np.pi * (200 + 60 * index) * t)))
        lines.append({"audio": {"path": f"{index}.wav"}, "sentence": f"clip {word}"})
    manifest = folder / "train.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return manifest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(node: int, port: int) -> list[str]:
    return [
        *("-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node)),
        *("--nproc_per_node", "1", "--rdzv_backend", "c10d"),
        *("--rdzv_endpoint", f"127.0.0.1:{port}"),
    ]


def accelerate(node: int, port: int) -> list[str]:
    """The 2-machine accelerate config, with one process per machine on this CPU."""
    return [
        *("-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CONFIG)),
        *("--num_processes", "2", "--machine_rank", str(node), "--mixed_precision", "no"),
        *("--main_process_ip", "127.0.0.1", "--main_process_port", str(port)),
    ]


def launch_two_nodes(launcher, train_data, model, tmp_path, *extra: str) -> Path:
    """Start both nodes, wait for them, return the folder where their ranks' records are."""
    seen = tmp_path / "seen"
    seen.mkdir()
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    nodes = []
    for node in (0, 1):
        command = [
            *(sys.executable, *launcher(node, port), str(WORKER), str(seen), "finetune"),
            *("--train_data", str(train_data), "--base_model", str(model)),
            *("--output_dir", str(tmp_path / f"node{node}"), "--save_on_each_node"),
            *("--max_steps", str(STEPS), "--save_steps", str(STEPS)),
            *("--per_device_train_batch_size", str(BATCH), "--num_workers", "0"),
            *("--lora_r", "4", "--learning_rate", "1e-2", "--report_to", "none", *extra),
        ]
        log = (tmp_path / f"node{node}.log").open("w")
        nodes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
    for node, process in enumerate(nodes):
        assert process.wait(timeout=300) == 0, (tmp_path / f"node{node}.log").read_text()[-3000:]
    return seen


def sentences_by_rank(seen: Path, model) -> dict[int, list[str]]:
    from transformers import WhisperTokenizer

    tokenizer = WhisperTokenizer.from_pretrained(model)
    return {
        rank: [
            tokenizer.decode(json.loads(line), skip_special_tokens=True).strip()
            for line in (seen / f"rank{rank}.jsonl").read_text().splitlines()
        ]
        for rank in (0, 1)
    }


def assert_same_trained_adapters(tmp_path, model) -> None:
    """Each node wrote checkpoint-final (and a resumable step checkpoint with its run
    config); the adapters are the same trained weights."""
    from safetensors.torch import load_file

    runs = [tmp_path / f"node{node}" / Path(model).name for node in (0, 1)]
    adapters = [load_file(run / "checkpoint-final" / "adapter_model.safetensors") for run in runs]
    assert adapters[0].keys() == adapters[1].keys()
    for name, weight in adapters[0].items():
        assert np.array_equal(weight.numpy(), adapters[1][name].numpy()), name
    trained = [w for name, w in adapters[0].items() if "lora_B" in name]  # zero at the start
    assert trained and all(w.abs().sum() > 0 for w in trained)
    for run in runs:
        saved = json.loads((run / "checkpoint-final" / "run_config.json").read_text())
        assert saved["world_size"] == 2 and saved["global_step"] == STEPS
        assert (run / f"checkpoint-{STEPS}" / "run_config.json").is_file()


@pytest.mark.slow
def test_two_torchrun_nodes_split_a_manifest_by_index(clips, tiny_whisper_en, tmp_path):
    seen = launch_two_nodes(torchrun, clips, tiny_whisper_en, tmp_path)
    assert_same_trained_adapters(tmp_path, tiny_whisper_en)
    ranks = sentences_by_rank(seen, tiny_whisper_en)
    assert len(ranks[0]) == len(ranks[1]) == STEPS * BATCH
    assert not set(ranks[0]) & set(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == sorted(f"clip {word}" for word in WORDS)


@pytest.mark.slow
def test_two_accelerate_nodes_read_their_own_shards(clips, tiny_whisper_en, tmp_path):
    """A sharded corpus of 4 shards: each rank streams 2 whole shards of its own, here while
    training the dynamic audio context."""
    from whisper_tune.data.prepare.sharding import write_shards
    from whisper_tune.data.shards import iter_shard_records

    shards = tmp_path / "shards"
    write_shards(clips, shards, samples_per_shard=2)
    shard_of = {u.sentence: u.audio_path.split("#")[0] for u, _ in iter_shard_records(shards)}
    seen = launch_two_nodes(accelerate, shards, tiny_whisper_en, tmp_path, "--dynamic_audio_ctx")
    assert_same_trained_adapters(tmp_path, tiny_whisper_en)
    ranks = sentences_by_rank(seen, tiny_whisper_en)
    assert sorted(ranks[0] + ranks[1]) == sorted(shard_of)
    read = [{shard_of[sentence] for sentence in ranks[rank]} for rank in (0, 1)]
    assert len(read[0]) == len(read[1]) == 2 and not read[0] & read[1]


def test_resuming_a_multinode_run_without_the_checkpoint_says_how_to_get_it(tmp_path):
    """A node without the step checkpoint (rank 0 wrote it on another machine) is told why."""
    from whisper_tune.errors import WhisperTuneError
    from whisper_tune.train.config import FinetuneConfig
    from whisper_tune.train.resume import check_resume

    missing = tmp_path / "checkpoint-6"
    config = FinetuneConfig(train_data="train.jsonl", resume_from_checkpoint=str(missing))
    with pytest.raises(WhisperTuneError, match="--save_on_each_node"):
        check_resume(config, "tiny.en", world_size=2)
    with pytest.raises(WhisperTuneError, match="no such checkpoint folder$"):
        check_resume(config, "tiny.en", world_size=1)
