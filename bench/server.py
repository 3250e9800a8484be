"""Server throughput and latency: ``whisper-tune serve`` on loopback vs the engine called directly.

A real server (``python -m whisper_tune serve`` on a free 127.0.0.1 port with its defaults:
bundled tiny.en, 2 model workers, beam 5, queue 8) answers ``POST /recognition`` from 1, 4
and 8 concurrent clients. The same wav bytes go through the same engine (loaded with the
server's settings, decoded from bytes as the server does) from 1, 4 and 8 threads of this
process. Each round runs every (clients, mode) pair once with a bounded number of requests;
reported: requests/s (median and best round), p50 and p95 latency over all rounds.

Usage: ``python -m bench.server [--smoke] [--output FILE]``.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from bench.harness import (
    REPO_ROOT,
    BenchError,
    bench_parser,
    finish,
    machine,
    markdown_table,
    parse_args,
    require_positive,
)

NAME = "server"
MODEL = "tiny.en"
SERVER_WORKERS = 2
BEAM_SIZE = 5
START_TIMEOUT = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_server(
    log_path: Path, extra: Sequence[str] = (), models: Sequence[str] = (MODEL,)
) -> Iterator[tuple[str, int]]:
    """Start ``whisper-tune serve`` with ``models`` (plus ``extra`` flags) on a free loopback
    port; yield (base URL, pid)."""
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "whisper_tune", "serve", "--port", str(port)]
    command += ["--model_path", *models, "--num_workers", str(SERVER_WORKERS), *extra]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if server.poll() is not None:
                raise BenchError(f"the server exited {server.returncode}:\n{_tail(log_path)}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"the server did not answer within {START_TIMEOUT} s")
            time.sleep(0.5)
        yield url, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _tail(path: Path) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-15:])


def peak_rss_of(pid: int) -> float | None:
    """Peak RSS of another process in MiB (Linux ``VmHWM``), or None where unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def server_request(url: str) -> Callable[[bytes], str]:
    import httpx

    client = httpx.Client(timeout=300)

    def call(wav: bytes) -> str:
        response = client.post(
            f"{url}/recognition", files={"audio": ("clip.wav", wav, "audio/wav")}
        )
        if response.status_code != 200:
            raise BenchError(f"/recognition answered {response.status_code}: {response.text}")
        return " ".join(r["text"] for r in response.json()["results"])

    return call


def direct_request() -> Callable[[bytes], str]:
    """The engine with the server's settings and the options /recognition uses by default."""
    from whisper_tune.audio import load_audio
    from whisper_tune.inference import TranscribeOptions, load_transcriber

    engine = load_transcriber(MODEL, num_workers=SERVER_WORKERS, local_files_only=True)
    options = TranscribeOptions(beam_size=BEAM_SIZE, vad_filter=False, to_simple=True)

    def call(wav: bytes) -> str:
        segments, _ = engine.transcribe(load_audio(wav), options)
        return " ".join(s.text for s in segments)

    return call


def load(call: Callable[[bytes], str], wavs: Sequence[bytes], clients: int, requests: int):
    """``requests`` calls from ``clients`` threads; (wall seconds, latencies, transcripts)."""

    def timed(index: int) -> tuple[float, str]:
        started = time.perf_counter()
        text = call(wavs[index % len(wavs)])
        return time.perf_counter() - started, text

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(timed, range(requests)))
    return time.perf_counter() - started, [r[0] for r in results], [r[1] for r in results]


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))]


def main(argv: Sequence[str] | None = None) -> dict:
    parser = bench_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=None, help="requests per level and round (default 24)"
    )
    parser.add_argument(
        "--clients", type=int, nargs="+", default=None, help="concurrency levels (default 1 4 8)"
    )
    args = parse_args(parser, argv, NAME)
    from bench.speech import spoken
    from whisper_tune.corpus_text import ENGLISH_GENERAL
    from whisper_tune.synth import save_wav

    levels = args.clients or ([1, 2] if args.smoke else [1, 4, 8])
    requests = args.requests or (2 if args.smoke else 24)
    speeches = spoken(ENGLISH_GENERAL[:1] if args.smoke else ENGLISH_GENERAL[20:24], seed=3)
    record = {"name": NAME, "machine": machine(), "model": MODEL}
    record["setup"] = {
        "clients": levels,
        "requests_per_level_and_round": requests,
        "server_workers": SERVER_WORKERS,
        "beam_size": BEAM_SIZE,
        "clip_seconds": [round(s.seconds, 2) for s in speeches],
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        wavs = [
            save_wav(folder / f"c{i}.wav", s.audio).read_bytes() for i, s in enumerate(speeches)
        ]
        with running_server(folder / "server.log") as (url, pid):
            calls = {"server": server_request(url), "direct": direct_request()}
            for call in calls.values():
                for _ in range(args.warmup):
                    load(call, wavs, SERVER_WORKERS, len(wavs))
            found = {
                (mode, c): {"walls": [], "latencies": [], "texts": []}
                for c in levels
                for mode in calls
            }
            for round_index in range(args.repeats):
                for clients in levels:
                    modes = list(calls)[:: 1 if round_index % 2 == 0 else -1]
                    for mode in modes:
                        wall, latencies, texts = load(calls[mode], wavs, clients, requests)
                        entry = found[(mode, clients)]
                        entry["walls"].append(wall)
                        entry["latencies"] += latencies
                        entry["texts"] = texts
                print(f"  {NAME} round {round_index + 1}/{args.repeats} done", file=sys.stderr)
            record["server_peak_rss_mib"] = peak_rss_of(pid)  # after all rounds
    record["levels"] = [
        {
            "mode": mode,
            "clients": clients,
            "requests": requests,
            "requests_per_s_median": round(requests / statistics.median(e["walls"]), 3),
            "requests_per_s_best": round(requests / min(e["walls"]), 3),
            "p50_s": round(percentile(e["latencies"], 0.5), 4),
            "p95_s": round(percentile(e["latencies"], 0.95), 4),
            "empty_transcripts": sum(not t.strip() for t in e["texts"]),
        }
        for (mode, clients), e in found.items()
    ]
    by_key = {(r["mode"], r["clients"]): r for r in record["levels"]}
    record["server_over_direct"] = {
        str(c): round(
            by_key[("server", c)]["requests_per_s_median"]
            / by_key[("direct", c)]["requests_per_s_median"],
            3,
        )
        for c in levels
    }
    if args.smoke:
        check(record)
    return finish(args, NAME, record, tables(record))


def check(record: dict) -> None:
    for row in record["levels"]:
        where = f"{row['mode']} x{row['clients']}"
        require_positive(row, ["requests_per_s_median", "p50_s", "p95_s"], where)
        if row["empty_transcripts"]:
            raise BenchError(f"{where}: {row['empty_transcripts']} empty transcripts")


def tables(record: dict) -> list[str]:
    ratio = record["server_over_direct"]
    return [
        markdown_table(
            ["clients", "mode", "req/s median", "req/s best", "p50 s", "p95 s", "server/direct"],
            [
                [
                    r["clients"],
                    r["mode"],
                    r["requests_per_s_median"],
                    r["requests_per_s_best"],
                    r["p50_s"],
                    r["p95_s"],
                    ratio[str(r["clients"])] if r["mode"] == "server" else "",
                ]
                for r in sorted(
                    record["levels"], key=lambda r: (r["clients"], r["mode"] != "server")
                )
            ],
        ),
        f"server process peak RSS: {record['server_peak_rss_mib']} MiB",
    ]


if __name__ == "__main__":
    main()
