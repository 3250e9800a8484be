"""``whisper-tune bench``: run one of the benchmarks kept in a source checkout's ``bench/``."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from whisper_tune.errors import WhisperTuneError

COMMAND = "bench"
HELP = "benchmarks (transcribe, finetune, evaluate, server): tables and JSON, side by side"
DESCRIPTION = (
    "Run a benchmark from the bench/ folder of a whisper-tune source checkout (the same code "
    "as 'python -m bench.NAME' from the repository root): transcribe (whisper-tune vs "
    "faster-whisper and transformers, int8/float32, batched, VAD, RTF, peak RSS), finetune "
    "(samples/s, peak RSS and loss vs a plain Seq2SeqTrainer + PEFT baseline), evaluate "
    "(utterances/s, feature extraction) or server (requests/s, p50/p95 latency). Each prints "
    "tables and writes JSON (default bench/results/NAME.json); --smoke runs a small sanity "
    "check. Options after NAME go to the benchmark: whisper-tune bench transcribe --help."
)
BENCHMARKS = ("transcribe", "finetune", "evaluate", "server")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=BENCHMARKS, help="which benchmark to run")
    parser.add_argument(
        "bench_args",
        nargs=argparse.REMAINDER,
        help="the benchmark's own options, e.g. --smoke or --output FILE",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    root = find_bench_root()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    importlib.import_module(f"bench.{args.name}").main(args.bench_args)
    return 0


def find_bench_root() -> Path:
    """The repository root holding ``bench/``: the current folder, or the source tree of an
    editable install of whisper-tune."""
    import whisper_tune

    candidates = [Path.cwd(), Path(whisper_tune.__file__).resolve().parents[2]]
    for root in candidates:
        if (root / "bench" / "__init__.py").is_file() and (root / "bench" / "harness.py").is_file():
            return root
    raise WhisperTuneError(
        "the benchmarks live in the bench/ folder of a whisper-tune source checkout, which is "
        "neither the current folder nor where whisper-tune is installed from; run this from "
        "the repository root of a clone (pip install -e . there)"
    )
