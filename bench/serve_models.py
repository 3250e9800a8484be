"""Two models behind one server under load: 8 clients for a fixed time, each request naming
its model.

A real server (``python -m whisper_tune serve --model_path tiny.en base`` on a free loopback
port: 2 model workers, queue 8, beam 5) answers 8 client threads for ``--seconds``. Client i
names model i mod 2 and alternates the OpenAI API (``/v1/audio/transcriptions``, ``model``
field) and the seed API (``/recognition``, ``model`` form field), cycling through a few short
English clips. Reported per model and overall: requests, errors, throughput, p50 and p95
latency; then the server's ``/metrics`` are checked against the requests sent (by route and
status) and its audio-seconds counter against the clips' lengths. ``--smoke``: 4 s with a
second copy of tiny.en (from ``--models_dir``) instead of base, 2 clients for 2 s.

Usage: ``python -m bench.serve_models [--smoke] [--seconds S] [--output FILE]``.
"""

from __future__ import annotations

import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.harness import BenchError, bench_parser, finish, machine, markdown_table, parse_args
from bench.server import SERVER_WORKERS, peak_rss_of, percentile, running_server

NAME = "serve_models"
CLIENTS = 8  # --smoke: 2
ROUTES = ("/v1/audio/transcriptions", "/recognition")


def client_loop(url: str, model: str, wavs: Sequence[bytes], until: float, index: int) -> list:
    """Requests until ``until``: (model, route, status, seconds, audio index, text)."""
    import httpx

    done = []
    with httpx.Client(base_url=url, timeout=300) as client:
        n = 0
        while time.monotonic() < until:
            route = ROUTES[(index + n) % 2]
            field = "file" if route.startswith("/v1") else "audio"
            clip = (index + n) % len(wavs)
            started = time.perf_counter()
            response = client.post(
                route, files={field: ("a.wav", wavs[clip], "audio/wav")}, data={"model": model}
            )
            seconds = time.perf_counter() - started
            text = ""
            if response.status_code == 200:
                body = response.json()
                text = body.get("text") or " ".join(r["text"] for r in body["results"])
            done.append((model, route, response.status_code, seconds, clip, text))
            n += 1
    return done


def metric_samples(text: str, name: str) -> dict[tuple, float]:
    """``{sorted label pairs: value}`` of one Prometheus metric."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            head, value = line.rsplit(" ", 1)
            found[tuple(sorted(re.findall(r'(\w+)="([^"]*)"', head)))] = float(value)
    return found


def run(
    url: str, models: Sequence[str], wavs: Sequence[bytes], seconds: float, clients: int
) -> list:
    until = time.monotonic() + seconds
    results: list = []
    lock = threading.Lock()

    def client(index: int) -> None:
        mine = client_loop(url, models[index % len(models)], wavs, until, index)
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def summary(rows: list, wall: float) -> dict:
    latencies = [r[3] for r in rows if r[2] == 200]
    return {
        "requests": len(rows),
        "errors": sum(r[2] != 200 for r in rows),
        "requests_per_s": round(len(rows) / wall, 3),
        "p50_s": round(percentile(latencies, 0.5), 3) if latencies else None,
        "p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
        "empty_transcripts": sum(r[2] == 200 and not r[5].strip() for r in rows),
    }


def check_metrics(metrics: str, rows: list, clip_seconds: Sequence[float]) -> dict:
    """The server's counters against what the clients sent; raises on a mismatch."""
    sent = Counter((r[1], str(r[2])) for r in rows)
    counted = metric_samples(metrics, "whisper_tune_http_requests_total")
    server = {
        (labels["route"], labels["status"]): int(value)
        for labels, value in ((dict(k), v) for k, v in counted.items())
        if labels["route"] in ROUTES
    }
    if server != dict(sent):
        raise BenchError(f"/metrics counted {server}, the clients sent {dict(sent)}")
    audio = metric_samples(metrics, "whisper_tune_audio_seconds_total")
    expected: Counter[str] = Counter()
    for r in rows:
        if r[2] == 200:
            expected[r[0]] += clip_seconds[r[4]]
    for model, seconds in expected.items():
        measured = audio.get((("model", model),), 0.0)
        if abs(measured - seconds) > 0.05 * seconds + 0.5:
            raise BenchError(f"/metrics: {measured:.1f} s of audio for {model}, sent {seconds:.1f}")
    return {f"{route} {status}": n for (route, status), n in sorted(sent.items())}


def main(argv: Sequence[str] | None = None) -> dict:
    parser = bench_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None, help="load time (default 60)")
    parser.add_argument("--clients", type=int, default=None, help=f"default {CLIENTS}")
    args = parse_args(parser, argv, NAME)
    import httpx

    from bench.speech import spoken
    from whisper_tune import zoo
    from whisper_tune.corpus_text import ENGLISH_GENERAL
    from whisper_tune.synth import save_wav

    seconds = args.seconds or (2.0 if args.smoke else 60.0)
    clients = args.clients or (2 if args.smoke else CLIENTS)
    speeches = spoken(ENGLISH_GENERAL[20:21] if args.smoke else ENGLISH_GENERAL[20:24], seed=3)
    clip_seconds = [round(s.seconds, 3) for s in speeches]
    record = {"name": NAME, "machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        wavs = [
            save_wav(folder / f"c{i}.wav", s.audio).read_bytes() for i, s in enumerate(speeches)
        ]
        if args.smoke:  # a second model as cheap as the first
            (folder / "models").mkdir()
            (folder / "models" / "tiny-copy").symlink_to(zoo.bundled_ct2_dir("tiny.en"))
            extra, paths = ["--models_dir", str(folder / "models")], ["tiny.en"]
        else:
            extra, paths = [], ["tiny.en", "base"]
        with running_server(folder / "server.log", extra, paths) as (url, pid):
            models = [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]]
            for model in models:  # load each model before the clock starts
                warm = httpx.post(
                    f"{url}{ROUTES[0]}",
                    files={"file": ("a.wav", wavs[0], "audio/wav")},
                    data={"model": model},
                    timeout=300,
                )
                if warm.status_code != 200:
                    raise BenchError(f"warm-up request to {model}: {warm.status_code}")
            before = httpx.get(f"{url}/metrics").text
            started = time.perf_counter()
            rows = run(url, models, wavs, seconds, clients)
            wall = time.perf_counter() - started
            after = httpx.get(f"{url}/metrics").text
            record["server_peak_rss_mib"] = peak_rss_of(pid)
    baseline = metric_samples(before, "whisper_tune_http_requests_total")
    if sum(v for k, v in baseline.items() if dict(k)["route"] in ROUTES) != len(models):
        raise BenchError("/metrics did not count the warm-up requests")
    warmup_rows = [(m, ROUTES[0], 200, 0.0, 0, "x") for m in models]
    record["setup"] = {
        "models": models,
        "clients": clients,
        "seconds": seconds,
        "server_workers": SERVER_WORKERS,
        "clip_seconds": clip_seconds,
    }
    record["wall_s"] = round(wall, 2)
    record["overall"] = summary(rows, wall)
    record["by_model"] = {m: summary([r for r in rows if r[0] == m], wall) for m in models}
    record["metrics_match"] = check_metrics(after, rows + warmup_rows, clip_seconds)
    if record["overall"]["errors"] or record["overall"]["empty_transcripts"]:
        raise BenchError(f"errors or empty transcripts: {record['overall']}")
    print(f"  {NAME}: {len(rows)} requests in {wall:.1f} s", file=sys.stderr)
    return finish(args, NAME, record, tables(record))


def tables(record: dict) -> list[str]:
    rows = [["all", *_cells(record["overall"])]]
    rows += [[model, *_cells(s)] for model, s in record["by_model"].items()]
    return [
        markdown_table(["model", "requests", "errors", "req/s", "p50 s", "p95 s"], rows),
        f"{record['setup']['clients']} clients, {record['wall_s']} s; /metrics matched "
        f"{record['metrics_match']}; server peak RSS {record['server_peak_rss_mib']} MiB",
    ]


def _cells(s: dict) -> list:
    return [s["requests"], s["errors"], s["requests_per_s"], s["p50_s"], s["p95_s"]]


if __name__ == "__main__":
    main()
