"""Serving in production (issue 21): several models per server, each request picking its
own; idle models unload; per-request decoding options within limits; /metrics, /ready,
/docs, request ids and a graceful shutdown. Real uvicorn on loopback, real models."""

from __future__ import annotations

import logging
import os
import re
import threading
import time

import httpx
import pytest
import requests
import uvicorn
from openai import NotFoundError, OpenAI

from whisper_tune import zoo
from whisper_tune.engine_settings import EngineSettings
from whisper_tune.server import ServerConfig, create_app
from whisper_tune.server.models import ModelRegistry
from whisper_tune.server.run import uvicorn_config

CJK = re.compile(r"[\u4e00-\u9fff]")


def rss_mb() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of the Prometheus text ``text`` (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.partition(" ")[0]))
            if found == labels:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def two_models(serve_app, tiny_en_transcriber):
    """tiny.en (English only, loaded) and base (multilingual, loaded by its first request)."""
    config = ServerConfig(more_models=("base",), request_timeout=60)
    return serve_app(create_app(config, tiny_en_transcriber))


@pytest.mark.slow
def test_each_request_is_answered_by_the_model_it_names(two_models, chinese_clip):
    """The same Mandarin request to each model: base answers in Chinese, English-only tiny.en
    in English. (One greedy pass at a fixed temperature: a fallback on this synthetic voice
    would decode each window up to six times.)"""
    fast = {"beam_size": "1", "temperature": "0.01", "language": "zh"}
    sdk = OpenAI(base_url=f"{two_models}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in sdk.models.list()] == ["tiny.en", "base"]
    answers = {}
    for name in ("tiny.en", "base"):
        with open(chinese_clip[0], "rb") as audio:
            verbose = sdk.audio.transcriptions.create(
                model=name, file=audio, response_format="verbose_json", extra_body=fast
            )
        answers[name] = (verbose.language, verbose.text)
    assert answers["tiny.en"][0] == "english" and not CJK.search(answers["tiny.en"][1])
    assert answers["base"][0] == "chinese" and CJK.search(answers["base"][1])
    with open(chinese_clip[0], "rb") as audio, pytest.raises(NotFoundError) as missing:
        sdk.audio.transcriptions.create(model="large-v9", file=audio)
    assert "tiny.en, base" in missing.value.body["message"]

    texts = {}
    for name in ("base", "tiny.en"):  # the seed API's form, with its model field
        with open(chinese_clip[0], "rb") as audio:
            response = requests.post(
                f"{two_models}/recognition",
                files={"audio": audio},
                data={"model": name, **fast},
                timeout=60,
            )
        assert response.status_code == 200, response.text
        texts[name] = "".join(r["text"] for r in response.json()["results"])
    assert CJK.search(texts["base"]) and not CJK.search(texts["tiny.en"])
    health = httpx.get(f"{two_models}/health").json()
    assert health["models"] == ["tiny.en", "base"] and set(health["loaded"]) == {"tiny.en", "base"}


def test_request_options_are_checked_against_the_servers_limits(two_models, english_clip):
    wav = english_clip[0].read_bytes()
    cases = [
        ("/recognition", {"model": "nope"}, 404, "model"),
        ("/recognition", {"beam_size": "11"}, 422, "beam_size"),
        ("/recognition", {"beam_size": "two"}, 422, "beam_size"),
        ("/recognition", {"temperature": "1.5"}, 422, "temperature"),
        ("/recognition", {"vad_filter": "maybe"}, 422, "vad_filter"),
        ("/recognition", {"hotwords": "x" * 2001}, 422, "hotwords"),
        ("/v1/audio/transcriptions", {"prompt": "x" * 2001}, 422, "prompt"),
        ("/v1/audio/transcriptions", {"beam_size": "0"}, 422, "beam_size"),
    ]
    for path, fields, status, field in cases:
        audio_field = "file" if path.startswith("/v1") else "audio"
        response = httpx.post(
            f"{two_models}{path}", files={audio_field: ("a.wav", wav)}, data=fields, timeout=30
        )
        assert response.status_code == status, (fields, response.text)
        body = response.json()
        param = body["error"]["param"] if path.startswith("/v1") else body["field"]
        assert param == field and field in response.text
    response = httpx.post(  # the options a request may set, all at once, on tiny.en
        f"{two_models}/recognition",
        files={"audio": ("a.wav", wav)},
        data={
            "model": "tiny.en",
            "beam_size": "1",
            "temperature": "0.2",
            "vad_filter": "1",
            "prompt": "A weather forecast.",
            "hotwords": "snow",
            "word_timestamps": "1",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    words = [w for r in response.json()["results"] for w in r["words"]]
    assert any(w["word"].strip().lower().startswith("snow") for w in words)
    assert all(w["start"] <= w["end"] for w in words)


def test_an_idle_model_unloads_and_its_memory_returns(serve_app, tiny_en_transcriber, english_clip):
    """(tiny_en_transcriber: the engine's libraries are loaded before RSS is measured.)"""
    config = ServerConfig(model_ttl=1.0)
    registry = ModelRegistry({"tiny.en": EngineSettings("tiny.en")}, ttl=config.model_ttl)
    url = serve_app(create_app(config, models=registry))
    before = rss_mb()
    with open(english_clip[0], "rb") as audio:
        response = requests.post(f"{url}/recognition", files={"audio": audio}, timeout=30)
    assert response.status_code == 200 and registry.loaded() == ["tiny.en"]
    loaded = rss_mb()
    unload = {"event": "unload", "model": "tiny.en"}
    deadline = time.monotonic() + 10  # the unload event is counted once the memory is freed
    while time.monotonic() < deadline:
        metrics = httpx.get(f"{url}/metrics").text
        if metric(metrics, "whisper_tune_model_events_total", **unload):
            break
        time.sleep(0.1)
    unloaded = rss_mb()
    print(f"\nRSS {before:.0f} -> {loaded:.0f} (loaded) -> {unloaded:.0f} MB (unloaded)")
    assert registry.loaded() == []
    weights = (zoo.bundled_ct2_dir("tiny.en") / "model.bin").stat().st_size / 2**20  # float16
    assert loaded - unloaded > 0.5 * weights  # int8 on a CPU: about half the file
    assert metric(metrics, "whisper_tune_model_events_total", event="load", model="tiny.en") == 1
    assert metric(metrics, "whisper_tune_model_events_total", **unload) == 1
    assert metric(metrics, "whisper_tune_models_loaded") == 0
    with open(english_clip[0], "rb") as audio:  # loads again on demand
        again = requests.post(f"{url}/recognition", files={"audio": audio}, timeout=30)
    assert again.status_code == 200 and "snow" in again.text.lower()


def test_metrics_count_the_requests_sent(serve_app, tiny_en_transcriber, english_clip, caplog):
    url = serve_app(create_app(ServerConfig(), tiny_en_transcriber))
    wav = english_clip[0].read_bytes()
    caplog.set_level(logging.INFO, logger="whisper_tune.access")
    sent = {"200": 3, "422": 2}
    for _ in range(sent["200"]):
        ok = httpx.post(f"{url}/v1/audio/transcriptions", files={"file": ("a.wav", wav)})
        assert ok.status_code == 200
    for _ in range(sent["422"]):
        bad = httpx.post(
            f"{url}/v1/audio/transcriptions",
            files={"file": ("a.wav", wav)},
            data={"temperature": "9"},
            headers={"X-Request-ID": "client-id-7"},
        )
        assert bad.status_code == 422 and bad.headers["x-request-id"] == "client-id-7"
    assert re.fullmatch(r"[0-9a-f]{32}", httpx.get(f"{url}/ready").headers["x-request-id"])
    text = httpx.get(f"{url}/metrics").text
    route = "/v1/audio/transcriptions"
    for status, count in sent.items():
        labels = {"route": route, "method": "POST", "status": status}
        assert metric(text, "whisper_tune_http_requests_total", **labels) == count
    assert metric(text, "whisper_tune_http_request_duration_seconds_count", route=route) == 5
    seconds = metric(text, "whisper_tune_audio_seconds_total", model="tiny.en")
    assert 3 * 2.0 < seconds < 3 * 4.0  # three clips of 2-4 s were transcribed
    assert metric(text, "whisper_tune_queue_depth") == 0
    lines = [r.getMessage() for r in caplog.records if "client-id-7" in r.getMessage()]
    assert len(lines) == 2 and "status=422" in lines[0] and f"path={route}" in lines[0]


def test_ready_docs_and_docs_off(tiny_en_transcriber):
    from fastapi.testclient import TestClient

    with TestClient(create_app(ServerConfig(), tiny_en_transcriber), "http://127.0.0.1") as c:
        assert c.get("/ready").json() == {"status": "ready"}
        assert "swagger-ui" in c.get("/docs").text
        paths = c.get("/openapi.json").json()["paths"]
        assert {"/recognition", "/v1/audio/transcriptions", "/v1/models"} <= set(paths)
        for path, fields in (
            ("/recognition", {"audio", "model", "word_timestamps"}),
            ("/v1/audio/transcriptions", {"file", "model", "prompt"}),
        ):
            body = paths[path]["post"]["requestBody"]["content"]["multipart/form-data"]
            assert fields | {"hotwords", "beam_size", "temperature"} <= set(
                body["schema"]["properties"]
            )
    off = create_app(ServerConfig(docs=False), tiny_en_transcriber)
    with TestClient(off, "http://127.0.0.1") as c:
        assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404


def test_shutdown_finishes_the_requests_in_flight(tiny_en_transcriber, english_clip):
    from test_server import GatedTranscriber

    gated = GatedTranscriber(tiny_en_transcriber)
    config = ServerConfig(port=0, shutdown_timeout=30)
    server = uvicorn.Server(uvicorn_config(create_app(config, gated), config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    result = {}

    def call() -> None:
        with open(english_clip[0], "rb") as audio:
            result["response"] = requests.post(
                f"http://127.0.0.1:{port}/recognition", files={"audio": audio}, timeout=60
            )

    client = threading.Thread(target=call)
    client.start()
    assert gated.entered.acquire(timeout=30)  # decoding has begun
    server.should_exit = True  # what SIGTERM does
    time.sleep(0.3)
    with pytest.raises(requests.ConnectionError):  # no new connections meanwhile
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
    gated.gate.set()
    client.join(60)
    thread.join(60)
    assert result["response"].status_code == 200
    assert result["response"].json()["results"]


def test_serve_flags_name_several_models_and_a_models_dir(tmp_path, monkeypatch):
    from test_cli_options import subparser
    from whisper_tune.cli.serve import server_config
    from whisper_tune.errors import ModelError
    from whisper_tune.server.app import model_registry
    from whisper_tune.server.run import check_models

    monkeypatch.delenv("WHISPER_TUNE_API_KEY", raising=False)
    (tmp_path / "customer-a").symlink_to(zoo.bundled_ct2_dir("tiny.en"))
    (tmp_path / "notes.txt").write_text("not a model")
    args = subparser("serve").parse_args(
        ["--model_path", "tiny.en", "base", "--models_dir", str(tmp_path), "--model_ttl", "5"]
        + ["--max_loaded_models", "2", "--allowed_hosts", "a.lan,b.lan", "c.lan"]
    )
    config = server_config(args)
    assert config.model_paths == ("tiny.en", "base")
    assert (config.model_ttl, config.max_loaded_models) == (5.0, 2)
    assert config.allowed_hosts == ("a.lan", "b.lan", "c.lan")
    registry = model_registry(config)
    assert registry.names == ["tiny.en", "base", "customer-a"] and registry.loaded() == []
    check_models(registry)  # without loading any
    (tmp_path / "broken").mkdir()
    with pytest.raises(ModelError, match="broken"):
        check_models(model_registry(config))
    twice = ServerConfig(more_models=(str(tmp_path / "customer-a"), str(tmp_path / "customer-a")))
    with pytest.raises(ModelError, match="two models are named 'customer-a'"):
        model_registry(twice)
    with pytest.raises(ModelError, match="not a directory"):
        model_registry(ServerConfig(models_dir=str(tmp_path / "none")))


def test_the_cap_unloads_the_least_recently_used_idle_model():
    loads = []

    def loader(settings):
        loads.append(settings.model_path)
        return object()

    models = {name: EngineSettings(name) for name in ("a", "b", "c")}
    registry = ModelRegistry(models, max_loaded=2, ttl=60, loader=loader)
    registry.load("a")
    registry.load("b")
    registry.load("a")  # a is now the most recently used
    registry.load("c")  # over the cap: b goes
    assert sorted(registry.loaded()) == ["a", "c"] and loads == ["a", "b", "c"]
    with registry.use("a"), registry.use("c"):
        with registry.use("b"):  # every other model is busy: b loads over the cap...
            assert sorted(registry.loaded()) == ["a", "b", "c"]
        assert sorted(registry.loaded()) == ["a", "c"]  # ...until it is idle again
    assert registry.sweep(time.monotonic() + 30) == []  # not idle for the TTL yet
    assert sorted(registry.sweep(time.monotonic() + 61)) == ["a", "c"]
    assert registry.loaded() == [] and loads == ["a", "b", "c", "b"]


def test_a_live_session_keeps_its_model_loaded(tiny_en_transcriber):
    from fastapi.testclient import TestClient

    registry = ModelRegistry(
        {"a": EngineSettings("tiny.en"), "b": EngineSettings("tiny.en")},
        ttl=60,
        loaded={"a": tiny_en_transcriber},
        loader=lambda settings: tiny_en_transcriber,  # "b": the same engine, not pinned
    )
    app = create_app(ServerConfig(), models=registry)
    chosen = {"input_audio_transcription": {"model": "b"}}
    with (
        TestClient(app, "http://127.0.0.1") as client,
        client.websocket_connect("ws://127.0.0.1/v1/realtime") as ws,
    ):
        assert ws.receive_json()["type"] == "session.created"
        ws.send_json({"type": "transcription_session.update", "session": chosen})
        assert ws.receive_json()["type"] == "transcription_session.updated"
        assert registry.loaded() == ["a", "b"]
        assert registry.sweep(time.monotonic() + 120) == []  # in use: never idle
    deadline = time.monotonic() + 5  # the session has ended: b is idle
    while registry.sweep(time.monotonic() + 120) != ["b"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert registry.loaded() == ["a"]
