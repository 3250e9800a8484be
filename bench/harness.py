"""What every benchmark shares: side-by-side timing, fresh-process probes, tables and JSON.

Timings are taken side by side: after a warm-up, each round runs every case once (the order
rotates from round to round), so a change in machine load hits all cases alike; the median
and the minimum of the rounds are reported. Peak memory is measured in a fresh process per
configuration (a *probe*: ``python -m bench.<name> --probe '<json>'``), so one
configuration's allocations never show up in another's number.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from whisper_tune.errors import WhisperTuneError

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
PROBE_MARK = "BENCH-PROBE-RESULT "
PACKAGES = ("torch", "transformers", "ctranslate2", "faster-whisper", "peft", "whisper-tune")


class BenchError(WhisperTuneError):
    """A benchmark produced no usable number (a failed probe, an empty transcript...)."""


@dataclass
class Timing:
    """Wall seconds of the measured rounds of one case, and its last output."""

    seconds: list[float]
    output: object = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def min(self) -> float:
        return min(self.seconds)

    def summary(self) -> dict:
        return {
            "median_s": round(self.median, 4),
            "min_s": round(self.min, 4),
            "runs_s": [round(s, 4) for s in self.seconds],
        }


def side_by_side(
    cases: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, label: str = ""
) -> dict[str, Timing]:
    """Run each case ``warmup`` times, then ``repeats`` rounds of every case once each."""
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    timings = {name: Timing([]) for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            output = cases[name]()
            timings[name].seconds.append(time.perf_counter() - started)
            timings[name].output = output
        print(f"  {label} round {round_index + 1}/{repeats} done", file=sys.stderr, flush=True)
    return timings


def bench_parser(name: str, description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=description)
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"JSON file to write (default: bench/results/{name}.json, "
        f"or {name}-smoke.json with --smoke)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a seconds-long run on tiny inputs that checks the numbers are sane (for CI)",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="measured rounds per case (default 3; smoke 1)"
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="unmeasured rounds first (default 1; smoke 0)"
    )
    parser.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None, name: str):
    """Parse and fill the defaults that depend on ``--smoke``."""
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.smoke else 3
    if args.warmup is None:
        args.warmup = 0 if args.smoke else 1
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be at least 1 and --warmup at least 0")
    if args.output is None:
        args.output = RESULTS_DIR / f"{name}{'-smoke' if args.smoke else ''}.json"
    return args


def machine() -> dict:
    """The CPU, its core count and load, and the versions that were measured."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "versions": versions,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB.

    Linux's ``VmHWM`` is used where it exists: ``ru_maxrss`` carries over the parent's peak
    across fork and exec, so a probe started by a big benchmark process would report that.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe_command(module: str, spec: dict) -> list[str]:
    """The command line of a probe: ``python -m <module> --probe <spec as JSON>``."""
    return [sys.executable, "-m", module, "--probe", json.dumps(spec)]


def probe_env() -> dict[str, str]:
    """The environment of a probe: this one, with the repository root importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def run_probe(module: str, spec: dict, timeout: float = 1800) -> dict:
    """Run ``spec`` in a fresh process (see :func:`probe_command`); return its result dict."""
    try:
        done = subprocess.run(
            probe_command(module, spec),
            cwd=REPO_ROOT,
            env=probe_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"probe {spec} ran past {timeout:g} s") from None
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(PROBE_MARK) and done.returncode == 0:
            return json.loads(line[len(PROBE_MARK) :])
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
    raise BenchError(f"probe {spec} failed (exit {done.returncode}):\n{tail}")


def answer_probe(result: dict) -> None:
    """Print a probe's result (plus its peak RSS) where :func:`run_probe` looks for it."""
    result = {**result, "peak_rss_mib": round(peak_rss_mib(), 1)}
    print(PROBE_MARK + json.dumps(result), flush=True)


def write_json(path: Path, record: dict) -> Path:
    """Write ``record`` to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(record, out, indent=2, ensure_ascii=False)
        out.write("\n")
    os.replace(tmp, path)
    return path


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-style table (readable in a terminal too); floats get 3 significant digits."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value == 0 or not math.isfinite(value):
            return str(value)
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return "" if value is None else str(value)


def require_positive(record: dict, keys: Sequence[str], where: str) -> None:
    """Every ``record[key]`` is a finite number above zero, else :class:`BenchError`."""
    for key in keys:
        value = record.get(key)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise BenchError(f"{where}: {key} = {value!r} is not a positive finite number")


def finish(args, name: str, record: dict, tables: Sequence[str]) -> dict:
    """Print the tables, add the machine's load at the end, write the JSON."""
    record["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    record["smoke"] = args.smoke
    record["repeats"] = args.repeats
    record["warmup"] = args.warmup
    print()
    for table in tables:
        print(table)
        print()
    path = write_json(args.output, record)
    print(f"{name}: wrote {path}")
    return record
