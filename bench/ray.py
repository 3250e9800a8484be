"""Ray's cost on one box: files/s of plain ``transcribe`` vs ``transcribe --ray`` (1, 2 actors).

On the bundled tiny.en and ``--clips`` (default 48) synthetic English clips, side by side in
one run, each case a whole ``whisper-tune transcribe`` process over the same folder, into a
fresh ``--output_dir`` each time (so the Ray job resumes nothing):

* ``local``: ``transcribe --audio_path <folder>`` (defaults: int8, 4 files a batch),
* ``ray-1`` / ``ray-2``: the same with ``--ray ADDRESS --num_actors 1|2 --cpus_per_actor 1``
  on a one-node local Ray cluster with every core, started once before the rounds (as
  ``ray start --head`` would be); each process connects, starts its actors (each loads the
  model), runs the job and disconnects.

files/s = clips / median process seconds; the WER of every case against the sentences shows
they all decoded the same speech.

Usage: ``python -m bench.ray [--smoke] [--clips N] [--output FILE]``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.harness import (
    BenchError,
    bench_parser,
    finish,
    machine,
    markdown_table,
    parse_args,
    require_positive,
    side_by_side,
)

NAME = "ray"
MODEL = "tiny.en"
LABELS = {
    "local": "whisper-tune transcribe <folder> (no Ray)",
    "ray-1": "transcribe --ray, 1 actor x 1 CPU",
    "ray-2": "transcribe --ray, 2 actors x 1 CPU",
}


def run_case(folder: str, extra: Sequence[str]) -> dict:
    """One whole ``transcribe`` process over ``folder``; its seconds and transcripts."""
    import json

    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "whisper_tune", "transcribe", "--audio_path", folder]
        command += ["--model_path", MODEL, "--language", "en", "--output_dir", out, *extra]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - started
        if done.returncode:
            tail = "\n".join(done.stderr.strip().splitlines()[-10:])
            raise BenchError(f"{' '.join(command[2:])} exited {done.returncode}:\n{tail}")
        texts = {
            p.stem: json.loads(p.read_text(encoding="utf-8"))["text"]
            for p in Path(out).glob("*.json")
        }
    return {"process_seconds": seconds, "texts": texts}


def measure(paths: list[str], sentences: list[str], address: str, args) -> list[dict]:
    """Every case over the clips at ``paths``, side by side (``args``: rounds, smoke)."""
    from bench.speech import corpus_word_error_rate

    folder = str(Path(paths[0]).parent)
    ray = ["--ray", address, "--cpus_per_actor", "1", "--num_actors"]
    cases = {
        "local": lambda: run_case(folder, []),
        "ray-1": lambda: run_case(folder, [*ray, "1"]),
        "ray-2": lambda: run_case(folder, [*ray, "2"]),
    }
    if args.smoke:  # one Ray case is enough to check the numbers are sane
        del cases["ray-1"]
    timings = side_by_side(cases, args.repeats, args.warmup, NAME)
    rows = []
    for key, timing in timings.items():
        texts = timing.output["texts"]
        pairs = [(s, texts.get(Path(p).stem, "")) for p, s in zip(paths, sentences, strict=True)]
        rows.append(
            {
                "config": key,
                "label": LABELS[key],
                "clips": len(paths),
                "files_written": len(texts),
                **timing.summary(),
                "files_per_s_median": round(len(paths) / timing.median, 3),
                "files_per_s_best": round(len(paths) / timing.min, 3),
                "wer": round(corpus_word_error_rate(pairs), 4),
            }
        )
    return rows


def ratios(rows: list[dict]) -> list[dict]:
    """Each Ray case's files/s over the local run's (below 1: Ray is slower on this box)."""
    local = next(r for r in rows if r["config"] == "local")
    return [
        {
            "what": f"{r['config']} / local files/s",
            "value": round(r["files_per_s_median"] / local["files_per_s_median"], 3),
        }
        for r in rows
        if r["config"] != "local"
    ]


def check(record: dict) -> None:
    """Smoke checks: positive numbers, every clip written, the speech recognised."""
    for row in record["rows"]:
        require_positive(row, ["median_s", "files_per_s_median"], row["label"])
        if row["files_written"] != row["clips"] or row["wer"] > 0.3:
            raise BenchError(f"{row['label']}: {row['files_written']} files, WER {row['wer']}")


def main(argv: Sequence[str] | None = None) -> dict:
    parser = bench_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=48, help="short clips transcribed")
    args = parse_args(parser, argv, NAME)
    from ray._common.utils import get_default_ray_temp_dir
    from ray.cluster_utils import Cluster

    from bench.speech import spoken
    from whisper_tune.corpus_text import ENGLISH_DOMAIN, ENGLISH_GENERAL
    from whisper_tune.synth import save_wav

    clips = 2 if args.smoke else args.clips
    speech = spoken((ENGLISH_GENERAL + ENGLISH_DOMAIN)[:clips], seed=7)
    record = {"name": NAME, "machine": machine(), "model": MODEL}
    cpus = os.cpu_count() or 1
    temp_dir = tempfile.mkdtemp(prefix="wt-ray-bench-")
    # Cluster writes the head's address under <system temp>/ray even with its own temp_dir,
    # and a fresh machine has no such folder
    os.makedirs(get_default_ray_temp_dir(), exist_ok=True)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": cpus, "include_dashboard": False, "temp_dir": temp_dir},
    )
    try:
        record["cluster"] = {"nodes": 1, "cpus": cpus}
        with tempfile.TemporaryDirectory() as folder:
            paths = [
                str(save_wav(Path(folder) / f"clip{i:03d}.wav", s.audio))
                for i, s in enumerate(speech)
            ]
            record["audio_seconds"] = round(sum(s.seconds for s in speech), 2)
            sentences = [s.text for s in speech]
            record["rows"] = measure(paths, sentences, cluster.address, args)
    finally:
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    record["ratios"] = ratios(record["rows"])
    if args.smoke:
        check(record)
    table = markdown_table(
        [
            "configuration",
            "clips",
            "median s",
            "min s",
            "files/s (median)",
            "files/s (best)",
            "WER",
        ],
        [
            [
                r["label"],
                r["clips"],
                r["median_s"],
                r["min_s"],
                r["files_per_s_median"],
                r["files_per_s_best"],
                r["wer"],
            ]
            for r in record["rows"]
        ],
    )
    ratio_table = markdown_table(
        ["ratio", "value"], [[r["what"], r["value"]] for r in record["ratios"]]
    )
    return finish(args, NAME, record, [table, ratio_table])


if __name__ == "__main__":
    main()
