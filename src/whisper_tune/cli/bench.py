"""``whisper-tune bench``: run one of the benchmarks kept in a source checkout's ``bench/``.

The benchmarks are developer tools, not part of the installed package: they live beside
``tests/`` in the repository and run as ``python -m bench.NAME`` from its root (they need the
``dev`` and ``demo`` extras). This subcommand runs exactly that in a fresh interpreter, so
nothing the CLI imported counts in a benchmark's memory figures, and says where the
benchmarks are when there is no checkout.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from whisper_tune.errors import WhisperTuneError

COMMAND = "bench"
HELP = (
    "benchmarks (transcribe, finetune, evaluate, server, serve_models, streaming, audio_ctx, "
    "gpu): tables, JSON"
)
DESCRIPTION = (
    "Run a benchmark from the bench/ folder of a whisper-tune source checkout (the same code "
    "as 'python -m bench.NAME' from the repository root): transcribe (whisper-tune vs "
    "faster-whisper and transformers, int8/float32, batched, VAD, RTF, peak RSS), finetune "
    "(samples/s, peak RSS and loss vs a plain Seq2SeqTrainer + PEFT baseline), evaluate "
    "(utterances/s, feature extraction), server (requests/s, p50/p95 latency), serve_models "
    "(8 clients across two models for 60 s: throughput, p50/p95, /metrics checked), streaming "
    "(live commit lag, 1 and 4 streams) or audio_ctx (30 s windows vs --audio_ctx on short "
    "clips, stock vs finetune --dynamic_audio_ctx) or gpu (the GPU path in one run: training "
    "precisions beside the seed's recipe, GPU transcription, serve --use_gpu; --device cpu "
    "--smoke on a CPU). Each prints "
    "tables and writes JSON (default bench/results/NAME.json); --smoke runs a small sanity "
    "check. Options after NAME go to the benchmark: whisper-tune bench transcribe --help."
)
BENCHMARKS = (
    "transcribe",
    "finetune",
    "evaluate",
    "server",
    "serve_models",
    "streaming",
    "audio_ctx",
    "gpu",
)


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=BENCHMARKS, help="which benchmark to run")
    parser.add_argument(
        "bench_args",
        nargs=argparse.REMAINDER,
        help="the benchmark's own options, e.g. --smoke or --output FILE",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    """``python -m bench.NAME ARGS`` with the checkout on the child's path; its exit status."""
    root = str(find_bench_root())
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", f"bench.{args.name}", *args.bench_args]
    return subprocess.run(command, env={**os.environ, "PYTHONPATH": path}, check=False).returncode


def find_bench_root() -> Path:
    """The repository root holding ``bench/``: the current folder, or the source tree of an
    editable install of whisper-tune."""
    import whisper_tune

    candidates = [Path.cwd(), Path(whisper_tune.__file__).resolve().parents[2]]
    for root in candidates:
        if (root / "bench" / "__init__.py").is_file() and (root / "bench" / "harness.py").is_file():
            return root
    raise WhisperTuneError(
        "the benchmarks are not installed with whisper-tune: they are the bench/ folder of a "
        "source checkout, which is neither the current folder nor where whisper-tune is "
        "installed from; in a clone (pip install -e '.[dev,demo]'), run 'python -m bench.NAME' "
        "or this command from its root"
    )
