"""The HTTP server through its real app (TestClient) on the bundled tiny.en model."""

from __future__ import annotations

import gc
import io
import json
import os
import socket
import tempfile
import threading
import time

import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient

from whisper_tune.audio import SAMPLE_RATE, load_audio, resample
from whisper_tune.engine_settings import EngineSettings
from whisper_tune.server import ServerConfig, create_app

EXPECTED_WORDS = ("weather", "snow", "tomorrow")  # conftest.ENGLISH_CLIP_TEXT
LOOPBACK = "http://127.0.0.1"  # the server answers only for its own and loopback names


@pytest.fixture(scope="module")
def wav(english_clip) -> bytes:
    return english_clip[0].read_bytes()


@pytest.fixture(scope="module")
def client(tiny_en_transcriber):
    with TestClient(create_app(ServerConfig(), tiny_en_transcriber), LOOPBACK) as test_client:
        yield test_client


def _files(wav: bytes, field: str = "audio", name: str = "test.wav"):
    return [(field, (name, wav, "audio/wav"))]


def _said(text: str) -> bool:
    lowered = text.lower()
    return all(word in lowered for word in EXPECTED_WORDS)


class GatedTranscriber:
    """The real transcriber, held at a gate so a test controls when workers proceed."""

    engine = "ct2"

    def __init__(self, inner) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)

    def transcribe(self, audio, options):
        self.entered.release()
        self.gate.wait(60)
        return self.inner.transcribe(audio, options)


# --- the seed's API -----------------------------------------------------------------------


@pytest.mark.parametrize("language", ["zh", "Chinese"])
def test_recognition_accepts_a_language(client, wav, language):
    """The seed crashed whenever a language was passed; here it is honoured or, for an
    English-only model, ignored by the engine."""
    response = client.post(
        "/recognition", files=_files(wav), data={"language": language, "task": "transcribe"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0
    assert body["results"], body
    for item in body["results"]:
        assert set(item) == {"text", "start", "end"}
        assert 0.0 <= item["start"] <= item["end"]
    assert _said(" ".join(item["text"] for item in body["results"]))


def test_recognition_stream_is_nul_delimited_json(client, wav):
    response = client.post("/recognition_stream", files=_files(wav), data={"remove_pun": "1"})
    assert response.status_code == 200, response.text
    assert response.content.endswith(b"\0")
    records = [json.loads(chunk) for chunk in response.content.split(b"\0") if chunk]
    assert records
    for record in records:
        assert set(record) == {"result", "start", "end"}
        assert not any(mark in record["result"] for mark in ".,!?")  # remove_pun=1
    assert _said(" ".join(r["result"] for r in records))


# --- the OpenAI-compatible API through raw HTTP ---------------------------------------------


def test_transcriptions_json_and_text(client, wav):
    response = client.post("/v1/audio/transcriptions", files=_files(wav, "file"))
    assert response.status_code == 200, response.text
    assert _said(response.json()["text"])
    response = client.post(
        "/v1/audio/transcriptions",
        files=_files(wav, "file"),
        data={"model": "whisper-1", "response_format": "text"},
    )
    assert response.headers["content-type"].startswith("text/plain")
    assert _said(response.text)


def test_event_stream_deltas_add_up_to_the_done_text(client, wav):
    response = client.post(
        "/v1/audio/transcriptions", files=_files(wav, "file"), data={"stream": "true"}
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [
        json.loads(line[len("data: ") :])
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]
    assert [e["type"] for e in events[:-1]] == ["transcript.text.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "transcript.text.done"
    assert "".join(e["delta"] for e in events[:-1]) == events[-1]["text"]
    assert _said(events[-1]["text"])


def test_models_health_and_page(client):
    assert client.get("/v1/models").json()["data"][0]["id"] == "tiny.en"
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["workers"] == 2
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert "recognition_stream" in page.text and "MediaRecorder" in page.text


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/recognition", "to_simple", "2"),
        ("/recognition", "remove_pun", "maybe"),
        ("/recognition", "task", "summarise"),
        ("/recognition", "language", "klingon"),
        ("/recognition_stream", "language", "../../etc"),
        ("/v1/audio/transcriptions", "response_format", "xml"),
        ("/v1/audio/transcriptions", "temperature", "nan"),
        ("/v1/audio/transcriptions", "temperature", "1.5"),
        ("/v1/audio/transcriptions", "timestamp_granularities[]", "char"),
        ("/v1/audio/translations", "stream", "perhaps"),
    ],
)
def test_bad_field_values_are_422_naming_the_field(client, wav, path, field, value):
    audio_field = "file" if path.startswith("/v1") else "audio"
    response = client.post(path, files=_files(wav, audio_field), data={field: value})
    assert response.status_code == 422, response.text
    body = response.json()
    named = body["error"]["param"] if path.startswith("/v1") else body["field"]
    assert named == field
    message = body["error"]["message"] if path.startswith("/v1") else body["msg"]
    assert field in message


def test_undecodable_audio_is_400(client, wav):
    for junk in (b"RIFF\x00\x00\x00\x00WAVEfmt ", np.random.default_rng(0).bytes(4096)):
        response = client.post("/recognition", files=_files(junk))
        assert response.status_code == 400, response.text
        assert response.json()["code"] == 400
        assert "cannot decode" in response.json()["msg"]
    response = client.post("/v1/audio/transcriptions", files=_files(b"", "file"))
    assert response.status_code == 400
    assert "empty" in response.json()["error"]["message"]


def test_missing_file_and_wrong_content_type(client, wav):
    response = client.post("/recognition", data={"language": "en"}, files=_files(wav, "sound"))
    assert response.status_code == 422 and response.json()["field"] == "audio"
    response = client.post("/recognition", json={"to_simple": 1})
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["msg"]
    response = client.post(
        "/v1/audio/transcriptions", content=wav, headers={"content-type": "audio/wav"}
    )
    assert response.status_code == 415
    assert client.get("/no/such/page").status_code == 404
    assert client.get("/recognition").json() == {"code": 405, "msg": "Method Not Allowed"}


def test_upload_limit_is_413_with_and_without_content_length(tiny_en_transcriber, wav):
    app = create_app(ServerConfig(max_upload_mb=0.05), tiny_en_transcriber)
    assert len(wav) > 0.05 * 1024 * 1024
    with TestClient(app, LOOPBACK) as small:
        response = small.post("/recognition", files=_files(wav))
        assert response.status_code == 413
        assert "0.05 MB" in response.json()["msg"]

        def chunks():
            body = io.BytesIO(wav)
            while block := body.read(8192):
                yield block

        response = small.post(
            "/v1/audio/transcriptions",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=xyz"},
        )
        assert response.status_code == 413
        assert response.json()["error"]["code"] == 413


def test_api_key(tiny_en_transcriber, wav, monkeypatch):
    app = create_app(ServerConfig(api_key="s3cret"), tiny_en_transcriber)
    with TestClient(app, LOOPBACK) as locked:
        assert locked.post("/recognition", files=_files(wav)).status_code == 401
        response = locked.get("/v1/models", headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401
        assert "API key" in response.json()["error"]["message"]
        assert locked.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).is_success
        assert locked.get("/v1/models", headers={"X-API-Key": "s3cret"}).is_success
        assert locked.get("/health").json() == {"status": "ok"}  # nothing more without key
        assert locked.get("/health", headers={"X-API-Key": "s3cret"}).json()["auth"] is True
        assert locked.get("/").status_code == 200


def test_full_queue_is_503_with_retry_after(tiny_en_transcriber, wav):
    gated = GatedTranscriber(tiny_en_transcriber)
    app = create_app(ServerConfig(engine=EngineSettings(num_workers=1), queue_size=1), gated)
    with TestClient(app, LOOPBACK) as busy:
        results: list[int] = []

        def send() -> None:
            results.append(busy.post("/recognition", files=_files(wav)).status_code)

        senders = [threading.Thread(target=send) for _ in range(2)]
        for sender in senders:
            sender.start()
        assert gated.entered.acquire(timeout=30)  # one running, one waiting in the queue
        deadline = time.monotonic() + 30
        while busy.get("/health").json()["queued"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = busy.post("/recognition", files=_files(wav))
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        gated.gate.set()
        for sender in senders:
            sender.join(60)
        assert results == [200, 200]


def test_request_timeout_is_504_and_cancels_the_job(tiny_en_transcriber, wav):
    gated = GatedTranscriber(tiny_en_transcriber)
    app = create_app(ServerConfig(engine=EngineSettings(num_workers=1), request_timeout=0.5), gated)
    with TestClient(app, LOOPBACK) as slow:
        response = slow.post("/v1/audio/transcriptions", files=_files(wav, "file"))
        assert response.status_code == 504
        assert "timeout" in response.json()["error"]["message"]
        gated.gate.set()
        deadline = time.monotonic() + 30
        while slow.get("/health").json()["busy"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slow.get("/health").json()["busy"] == 0


def _open_files_in(folder) -> list[str]:
    """What this process holds open in ``folder``, unlinked temporary files included."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since the listing
            continue
        if target.startswith(f"{folder}/"):
            held.append(target)
    return held


def _wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _disconnect_mid_upload(base_url: str, body: bytes, spooled: list) -> None:
    """Send the headers and all but the end of a multipart ``body`` over a raw socket, wait
    until the server has spooled it to disk, then hang up."""
    host, port = base_url.removeprefix("http://").split(":")
    head = (
        f"POST /recognition HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    already = len(spooled)
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(head + body[:-100])
        _wait_for(lambda: len(spooled) > already, "the partial upload to reach the disk spool")


def test_spooled_uploads_are_closed_after_success_error_and_disconnect(
    client, tiny_en_transcriber, serve_app, english_clip, tmp_path, monkeypatch
):
    """Uploads over 1 MB are spooled by Starlette to unnamed temporary files (O_TMPFILE: they
    never show in a folder listing), so the check is on this process's open descriptors: each
    spooled file must be closed once its request ends, however it ends."""
    audio = resample(load_audio(english_clip[0]), SAMPLE_RATE, 48000)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack([audio, audio], axis=1), 48000, format="WAV", subtype="FLOAT")
    big_wav = buffer.getvalue()
    assert len(big_wav) > 1024 * 1024
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    spooled = []
    make_temporary = tempfile.TemporaryFile

    def recording(*args, **kwargs):
        spooled.append(make_temporary(*args, **kwargs))
        return spooled[-1]

    monkeypatch.setattr(tempfile, "TemporaryFile", recording)
    gc.disable()  # a leak must not be hidden by a garbage collection closing the file
    try:
        for _ in range(3):
            response = client.post("/recognition", files=_files(big_wav, name="../../x.wav"))
            assert response.status_code == 200, response.text
            assert _said(" ".join(r["text"] for r in response.json()["results"]))
        junk = np.random.default_rng(0).bytes(len(big_wav))
        assert client.post("/recognition", files=_files(junk)).status_code == 400
        refused = client.post("/recognition", files=_files(big_wav), data={"task": "x"})
        assert refused.status_code == 422
        assert client.post("/recognition", files=_files(big_wav, "sound")).status_code == 422
        assert len(spooled) == 6 and _open_files_in(tmp_path) == []

        body = b"".join(
            [b"--xyz\r\n", b'Content-Disposition: form-data; name="audio"; filename="a.wav"\r\n']
            + [b"Content-Type: audio/wav\r\n\r\n", big_wav, b"\r\n--xyz--\r\n"]
        )
        server = serve_app(create_app(ServerConfig(), tiny_en_transcriber))
        _disconnect_mid_upload(server, body, spooled)
        _wait_for(lambda: not _open_files_in(tmp_path), "the server to close the spooled file")
    finally:
        gc.enable()


# --- Chinese on the multilingual base model -------------------------------------------------


@pytest.mark.slow
def test_chinese_on_a_multilingual_model():
    """The seed's crash case on a model that speaks Chinese: language "Chinese" works, and
    to_simple (on by default, as in the seed) returns simplified characters only."""
    from whisper_tune.inference import load_transcriber
    from whisper_tune.synth import synthesize
    from whisper_tune.text import to_simplified

    audio = synthesize("请问现在几点了", "zh", speed=0.8)
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, SAMPLE_RATE, format="WAV")
    config = ServerConfig(engine=EngineSettings("base", num_workers=1), beam_size=1)
    with TestClient(create_app(config, load_transcriber("base")), LOOPBACK) as base:
        response = base.post(
            "/recognition", files=_files(buffer.getvalue()), data={"language": "Chinese"}
        )
    assert response.status_code == 200, response.text
    text = "".join(item["text"] for item in response.json()["results"])
    assert sum("\u4e00" <= ch <= "\u9fff" for ch in text) >= 3, text
    assert text == to_simplified(text)
