"""Peak resident memory of ``whisper-tune transcribe`` on a 1-minute and a 10-minute file.

Each run is a fresh process (``python -m whisper_tune transcribe``); its peak RSS comes from
``resource.getrusage(RUSAGE_CHILDREN)``. The audio is synthesised English sentences repeated
to length. Usage::

    python bench/transcribe_memory.py [--model_path tiny.en] [--engine ct2] [--minutes 1 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from whisper_tune.audio import SAMPLE_RATE
from whisper_tune.corpus_text import ENGLISH_GENERAL
from whisper_tune.synth import concatenate, save_wav, synthesize


def speech_file(folder: Path, minutes: float, base: np.ndarray) -> Path:
    """``base`` repeated to ``minutes`` and written as 16-bit wav."""
    n = int(minutes * 60 * SAMPLE_RATE)
    audio = np.tile(base, int(np.ceil(n / len(base))))[:n]
    return save_wav(folder / f"speech_{minutes:g}min.wav", audio)


def peak_rss_mib(command: list[str]) -> tuple[float, float]:
    """Run ``command`` in a fresh process; its peak RSS in MiB and wall seconds.

    ``RUSAGE_CHILDREN`` reports the largest child so far, so each measurement runs in its own
    intermediate Python process.
    """
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
        "stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", probe, *command], check=True, capture_output=True, text=True
    )
    return int(out.stdout.strip()) / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_path", default="tiny.en", help="model to transcribe with")
    parser.add_argument("--engine", default="auto", help="auto, ct2 or transformers")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10], help="file lengths")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more CLI flags")
    args = parser.parse_args()
    clips = [synthesize(text, "en", seed=i) for i, text in enumerate(ENGLISH_GENERAL)]
    base = concatenate(clips, 0.8)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for minutes in args.minutes:
            path = speech_file(Path(folder), minutes, base)
            command = [
                sys.executable,
                "-m",
                "whisper_tune",
                "transcribe",
                "--audio_path",
                str(path),
                "--model_path",
                args.model_path,
                "--engine",
                args.engine,
                *args.extra,
            ]
            rss, seconds = peak_rss_mib(command)
            results.append(
                {
                    "minutes": minutes,
                    "peak_rss_mib": round(rss, 1),
                    "wall_seconds": round(seconds, 1),
                }
            )
            print(json.dumps(results[-1]), flush=True)
    ratio = results[-1]["peak_rss_mib"] / results[0]["peak_rss_mib"]
    print(
        json.dumps(
            {
                "engine": args.engine,
                "model": args.model_path,
                "rss_ratio_last_over_first": round(ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
