"""The server under a real uvicorn on a loopback port: the seed's client code, the official
``openai`` SDK, a fuzz run of hostile requests and a bounded load test."""

from __future__ import annotations

import json
import logging
import socket
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import requests
from openai import OpenAI, UnprocessableEntityError

from whisper_tune.server import ServerConfig, create_app

EXPECTED_WORDS = ("weather", "snow", "tomorrow")  # conftest.ENGLISH_CLIP_TEXT


@pytest.fixture(scope="module")
def live_url(serve_app, tiny_en_transcriber):
    config = ServerConfig(request_timeout=30, max_audio_seconds=600)
    return serve_app(create_app(config, tiny_en_transcriber))


@pytest.fixture(scope="module")
def sdk(live_url):
    return OpenAI(base_url=f"{live_url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def clip(english_clip):
    return english_clip[0]


def _said(text: str) -> bool:
    lowered = text.lower()
    return all(word in lowered for word in EXPECTED_WORDS)


# --- the seed's client code, as its README shows it ------------------------------------------


def test_seed_recognition_client(live_url, clip):
    url = f"{live_url}/recognition"
    path = str(clip)
    # ---- from the seed's README (only the URL and file path differ) ----
    response = requests.post(
        url=url,
        files=[("audio", ("test.wav", open(path, "rb"), "audio/wav"))],  # noqa: SIM115
        json={"to_simple": 1, "remove_pun": 0, "task": "transcribe"},
        timeout=20,
    )
    print(response.text)
    # ---------------------------------------------------------------------------------------
    body = response.json()
    assert body["code"] == 0
    assert _said(" ".join(item["text"] for item in body["results"]))


def test_seed_stream_client_gets_segments_as_they_are_decoded(live_url, long_english_file, capsys):
    long_file, texts = long_english_file
    url = f"{live_url}/recognition_stream"
    path = str(long_file)
    arrivals = []
    started = time.monotonic()
    # ---- from the seed's README (URL and file path differ; arrival times recorded) ----
    response = requests.post(
        url=url,
        files=[("audio", ("test.wav", open(path, "rb"), "audio/wav"))],  # noqa: SIM115
        json={"to_simple": 1, "remove_pun": 0, "task": "transcribe"},
        stream=True,
        timeout=20,
    )
    for chunk in response.iter_lines(decode_unicode=False, delimiter=b"\0"):
        if chunk:
            result = json.loads(chunk.decode())
            text = result["result"]
            start = result["start"]
            end = result["end"]
            print(f"[{start} - {end}]:{text}")
            arrivals.append((time.monotonic() - started, start))
    # ---------------------------------------------------------------------------------------
    printed = capsys.readouterr().out.lower()
    for sentence in (texts[0], texts[-1]):
        assert max(sentence.lower().split(), key=len).strip(".,!?") in printed
    first_window = [t for t, start in arrivals if start < 25]
    last_window = [t for t, start in arrivals if start >= 120]
    assert first_window and last_window
    # The first window's segments reached the client long before the last one was decoded.
    assert max(first_window) < min(last_window) - 0.5, arrivals


# --- the official openai SDK ----------------------------------------------------------------


def test_sdk_json_text_and_models(sdk, clip):
    with open(clip, "rb") as audio:
        result = sdk.audio.transcriptions.create(model="whisper-1", file=audio, language="en")
    assert _said(result.text)
    with open(clip, "rb") as audio:
        text = sdk.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="text"
        )
    assert isinstance(text, str) and _said(text)
    assert [model.id for model in sdk.models.list()] == ["tiny.en"]


def test_sdk_subtitles(sdk, clip):
    with open(clip, "rb") as audio:
        srt = sdk.audio.transcriptions.create(model="whisper-1", file=audio, response_format="srt")
    assert srt.startswith("1\n00:00:0") and " --> " in srt and _said(srt)
    with open(clip, "rb") as audio:
        vtt = sdk.audio.translations.create(model="whisper-1", file=audio, response_format="vtt")
    assert vtt.startswith("WEBVTT") and _said(vtt)


def test_sdk_verbose_json_with_words(sdk, clip):
    with open(clip, "rb") as audio:
        verbose = sdk.audio.transcriptions.create(
            model="whisper-1",
            file=audio,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert verbose.language == "english"
    assert 2.0 < verbose.duration < 4.0
    assert verbose.segments and verbose.words
    assert [w.start for w in verbose.words] == sorted(w.start for w in verbose.words)
    assert any(w.word.strip().lower().startswith("snow") for w in verbose.words)
    assert all(s.start <= s.end for s in verbose.segments)
    assert _said(verbose.text)


def test_sdk_streaming(sdk, clip):
    with open(clip, "rb") as audio:
        stream = sdk.audio.transcriptions.create(model="whisper-1", file=audio, stream=True)
        events = list(stream)
    assert {e.type for e in events[:-1]} == {"transcript.text.delta"}
    assert events[-1].type == "transcript.text.done"
    assert "".join(e.delta for e in events[:-1]) == events[-1].text
    assert _said(events[-1].text)


def test_sdk_sees_field_errors(sdk, clip):
    with open(clip, "rb") as audio, pytest.raises(UnprocessableEntityError) as caught:
        sdk.audio.transcriptions.create(model="whisper-1", file=audio, temperature=7)
    assert caught.value.body["param"] == "temperature"


def test_stalled_upload_is_408(serve_app, tiny_en_transcriber):
    url = serve_app(create_app(ServerConfig(request_timeout=1), tiny_en_transcriber))
    port = urlsplit(url).port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /recognition HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000\r\n\r\n"
            b"--b\r\n"
        )
        reply = b""  # the server gives up after 1 s without more bytes
        while b"}" not in reply and (data := sock.recv(4096)):
            reply += data
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert b"did not arrive within 1 s" in reply


# --- fuzz -------------------------------------------------------------------------------------

PATHS = (
    "/recognition",
    "/recognition_stream",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
)
DECODING = ("model", "prompt", "hotwords", "temperature", "beam_size", "vad_filter")
SEED_FIELDS = ("to_simple", "remove_pun", "task", "language", "word_timestamps", *DECODING)
FIELDS = {
    "/recognition": SEED_FIELDS,
    "/recognition_stream": SEED_FIELDS,
    "/v1/audio/transcriptions": (
        "language",
        "response_format",
        "stream",
        "timestamp_granularities[]",
        *DECODING,
    ),
    "/v1/audio/translations": ("response_format", "stream", *DECODING),
}
# accepted but unusual decoding fields, sent with real audio: they reach the model
ODD_DECODING = (
    {"prompt": "🙂" * 100, "hotwords": "{{7*7}} ${jndi:ldap://x}", "model": "whisper-1"},
    {"temperature": "1", "beam_size": "1", "vad_filter": "true", "hotwords": "\x00\u202e"},
)
ODD_REQUEST_IDS = (b"x" * 5000, b"../../etc", b"\xff\xfe", b"", b"a b", b"id-1")
HOSTILE_NAMES = (
    "../../../../etc/passwd",
    "/etc/shadow",
    "..\\..\\windows\\win.ini",
    "C:\\boot.ini",
    "a\x00.wav",
    "~/.ssh/id_rsa",
    "%2e%2e%2f%2e%2e%2fx.wav",
    "x" * 5000,
    "CON",
    "",
    "bad\r\nX-Injected: 1",
    "日本語.wav",
    ".",
    "..",
    "/dev/zero",
    "\\\\server\\share\\x.wav",
)
ODD_VALUES = (
    "",
    " ",
    "nan",
    "inf",
    "-inf",
    "1e309",
    "-1",
    "2",
    "0x1",
    "١",
    "true false",
    "None",
    "\x00",
    "\ufeff1",
    "'; DROP TABLE x; --",
    "{{7*7}}",
    "${jndi:ldap://x}",
    "../../etc",
    "\u202ezh",
    "z" * 60000,
    "🙂" * 100,
    "transcribe\x00translate",
)


def _file_part(field: str, filename: bytes, data: bytes, ctype: bytes = b"audio/wav") -> bytes:
    return (
        b'Content-Disposition: form-data; name="'
        + field.encode()
        + b'"; filename="'
        + filename
        + b'"\r\nContent-Type: '
        + ctype
        + b"\r\n\r\n"
        + data
    )


def _field_part(name: bytes, value: bytes) -> bytes:
    return b'Content-Disposition: form-data; name="' + name + b'"\r\n\r\n' + value


def _multipart(parts: list[bytes], boundary: bytes = b"fuzzBoundary") -> tuple[dict, bytes]:
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    body += b"--" + boundary + b"--\r\n"
    return {"content-type": "multipart/form-data; boundary=" + boundary.decode()}, body


def _hostile_audio(clip: Path) -> list[bytes]:
    """Files that must never reach the model: FFmpeg concat scripts naming the clip, an hour
    of silent FLAC (with and without its length in the header) and 8-channel 192 kHz FLAC."""
    from test_server_security import silence_flac, unknown_length

    bomb = silence_flac(3600)
    return [
        f"ffconcat version 1.0\nfile '{clip}'\n".encode(),
        f"ffconcat version 1.0\nfile {clip.name}\n".encode(),
        bomb,
        unknown_length(bomb),
        silence_flac(20, 192_000, 8),
    ]


def _fuzz_requests(
    rng: np.random.Generator, wav: bytes, hostile: list[bytes]
) -> list[tuple[str, str, dict, bytes]]:
    """(method, path, headers, body) for every hostile HTTP request the fuzz run sends."""
    cases = []
    junk = lambda n: rng.bytes(int(n))  # noqa: E731
    audio_field = lambda path: "file" if path.startswith("/v1") else "audio"  # noqa: E731
    for path in PATHS:
        field = audio_field(path)
        for ctype in (
            None,
            "multipart/form-data",
            "multipart/form-data; boundary=x",
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/octet-stream",
            "audio/wav",
            "multipart/mixed; boundary=x",
        ):
            cases.append(("POST", path, {"content-type": ctype} if ctype else {}, b""))
        for size in rng.integers(1, 20000, 12):  # random bytes as the whole body
            cases.append(("POST", path, _multipart([])[0], junk(size)))
        for size in rng.integers(1, 20000, 12):  # random bytes as the audio
            cases.append(("POST", path, *_multipart([_file_part(field, b"x.wav", junk(size))])))
        for cut in (4, 12, 44, 45, 300):  # truncated wav files
            cases.append(("POST", path, *_multipart([_file_part(field, b"t.wav", wav[:cut])])))
        cut = int(rng.integers(100, len(wav) // 2))  # truncated mid-part: no closing boundary
        cases.append(
            (
                "POST",
                path,
                _multipart([])[0],
                _multipart([_file_part(field, b"t.wav", wav)])[1][:cut],
            )
        )
        for name in FIELDS[path]:  # odd field values with junk audio
            for value in ODD_VALUES:
                parts = [
                    _file_part(field, b"j.wav", junk(64)),
                    _field_part(name.encode(), value.encode()),
                ]
                cases.append(("POST", path, *_multipart(parts)))
        giant = [
            [_field_part(b"language", b"z" * 70000)],
            [_field_part(f"f{i}".encode(), b"1") for i in range(40)],
            [_file_part(field, b"a.wav", junk(10)), _file_part(field, b"b.wav", junk(10))],
            [_file_part("other", b"a.wav", junk(10))],
            [_field_part(field.encode(), b"not a file")],
            [_file_part(field, b"a.wav", junk(10), b"x" * 70000)],
        ]
        for parts in giant:
            cases.append(("POST", path, *_multipart(parts)))
        for value in (
            b"\xff\xfe\xfa",
            "中文".encode("gb18030"),
            "é".encode("latin-1"),
            "zh".encode("utf-16"),
            b"\xc0\xaf",
            b"\xed\xa0\x80",
        ):  # bad encodings
            parts = [
                _file_part(field, value, junk(32)),
                _field_part(b"language", value),
                _field_part(value, value),
            ]
            cases.append(("POST", path, *_multipart(parts)))
        headers, body = _multipart([_file_part(field, b"x.wav", junk(32))])
        for charset in ("utf-99", "latin-1", "utf-16", '"; boundary=evil'):
            cases.append(
                (
                    "POST",
                    path,
                    {"content-type": headers["content-type"] + f"; charset={charset}"},
                    body,
                )
            )
        for name in HOSTILE_NAMES:  # path tricks in file names, with junk audio
            encoded = name.encode("utf-8", "surrogateescape")
            cases.append(("POST", path, *_multipart([_file_part(field, encoded, junk(64))])))
        cases.append(("POST", path, *_multipart([_file_part(field, b"../../x.wav", wav)])))
        for fields in ODD_DECODING:
            parts = [_field_part(k.encode(), v.encode()) for k, v in fields.items()]
            cases.append(("POST", path, *_multipart([_file_part(field, b"a.wav", wav), *parts])))
        for data in hostile:
            cases.append(("POST", path, *_multipart([_file_part(field, b"x.mp3", data)])))
        for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"):
            cases.append((method, path, {}, b""))
        for auth in (b"Bearer", b"Bearer " + b"k" * 9000, b"Basic Og==", b"\xff"):
            cases.append(("POST", path, {"authorization": auth}, b""))
    for path in (
        "/../../etc/passwd",
        "/static/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/" + "a" * 8000,
        "/v1/audio/transcriptions/../../../x",
        "/health%00",
        "/recognition?language=zh&audio=../../x",
        "/v1/models/../../health",
        "/index.html",
        "/\u00e9\u00e8",
        "/metrics?name[]=x",
        "/ready?x=%00",
        "/docs/../openapi.json",
        "/v1/models/" + "m" * 3000,
        "/v1/models/%2e%2e%2fhealth",
    ):
        cases.append(("GET", path, {}, b""))
    for request_id in ODD_REQUEST_IDS:
        cases.append(("GET", "/health", {"x-request-id": request_id}, b""))
    return cases


def _raw_requests(rng: np.random.Generator, port: int) -> list[bytes]:
    """Byte streams that are not well-formed HTTP at all."""
    host = f"Host: 127.0.0.1:{port}\r\n".encode()
    cases = [rng.bytes(int(n)) for n in rng.integers(1, 4000, 16)]
    cases += [
        b"\r\n\r\n",
        b"POST /recognition HTTP/1.1\r\n",
        b"POST /recognition HTTP/9.9\r\n" + host + b"\r\n",
        b"POST /recognition\r\n\r\n",
        b"GET /\r\n",
        b"POST /recognition HTTP/1.1\r\n" + host + b"Content-Length: -5\r\n\r\n",
        b"POST /recognition HTTP/1.1\r\n" + host + b"Content-Length: abc\r\n\r\n",
        b"POST /recognition HTTP/1.1\r\n"
        + host
        + b"Content-Length: 5\r\nContent-Length: 9\r\n\r\n",
        b"POST /recognition HTTP/1.1\r\n" + host + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /recognition HTTP/1.1\r\n"
        + host
        + b"Transfer-Encoding: chunked\r\nContent-Type: multipart/form-data; boundary=b\r\n\r\n"
        + b"5\r\n--b\r\n\r\n0\r\n\r\n",
        b"POST /recognition HTTP/1.1\r\n" + host + b"Bad Header\r\n\r\n",
        b"POST /recognition HTTP/1.1\r\n" + host + b"X-A: \x00\x01\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + host + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"GET /" + b"%" * 50 + b" HTTP/1.1\r\n" + host + b"\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on plain HTTP
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET /health HTTP/1.1\r\n" + host + b"\r\n" + b"GARBAGE\r\n\r\n",
    ]
    for _ in range(6):  # declared bodies that never fully arrive
        cases.append(
            b"POST /recognition HTTP/1.1\r\n"
            + host
            + b"Content-Type: multipart/form-data; boundary=b\r\n"
            + b"Content-Length: 100000\r\n\r\n--b\r\n"
        )
    return cases


def _send_raw(port: int, data: bytes) -> int | None:
    """Send ``data``, half-close, and return the status code answered (None: no answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            reply = sock.recv(64)
        except (ConnectionError, TimeoutError):
            return None
    if not reply.startswith(b"HTTP/1.1 "):
        return None
    return int(reply[9:12])


@pytest.mark.slow
def test_fuzz_hostile_requests_never_get_a_5xx(live_url, clip, caplog):
    rng = np.random.default_rng(20240611)
    wav = clip.read_bytes()
    port = urlsplit(live_url).port
    statuses: Counter[int | None] = Counter()
    failures = []
    caplog.set_level(logging.ERROR)
    with httpx.Client(base_url=live_url, timeout=60) as client:
        cases = _fuzz_requests(rng, wav, _hostile_audio(clip))
        for method, path, headers, body in cases:
            try:
                response = client.request(method, path, headers=headers, content=body)
                status = response.status_code
            except httpx.TransportError:
                status = None  # refused before reading (e.g. 413 on a closed connection)
            statuses[status] += 1
            if status is None or status >= 500:
                failures.append((method, path[:60], status, body[:80]))
    raw = _raw_requests(rng, port)
    for data in raw:
        status = _send_raw(port, data)
        statuses[status] += 1
        if status is not None and status >= 500:
            failures.append(("RAW", data[:60], status))
    total = len(cases) + len(raw)
    print(
        f"\nfuzz: {total} requests ({len(cases)} HTTP, {len(raw)} raw); statuses {dict(statuses)}"
    )
    assert total >= 500
    assert not failures, failures[:10]
    server_errors = [r for r in caplog.records if r.name.startswith(("whisper_tune", "uvicorn"))]
    assert not server_errors, [r.getMessage() for r in server_errors[:5]]
    assert httpx.get(f"{live_url}/health").json()["status"] == "ok"
    with open(clip, "rb") as audio:
        after = requests.post(f"{live_url}/recognition", files={"audio": audio}, timeout=60)
    assert _said(" ".join(item["text"] for item in after.json()["results"]))


# --- load -------------------------------------------------------------------------------------

LOAD_CLIENTS = 8
LOAD_REQUESTS = 24


@pytest.mark.slow
def test_load_eight_clients(live_url, clip):
    wav = clip.read_bytes()
    latencies: list[float] = []
    lock = threading.Lock()

    def one(_: int) -> str:
        started = time.perf_counter()
        response = requests.post(
            f"{live_url}/recognition", files=[("audio", ("a.wav", wav, "audio/wav"))], timeout=120
        )
        with lock:
            latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        return " ".join(item["text"] for item in response.json()["results"])

    started = time.perf_counter()
    with ThreadPoolExecutor(LOAD_CLIENTS) as clients:
        texts = list(clients.map(one, range(LOAD_REQUESTS)))
    wall = time.perf_counter() - started
    assert all(_said(text) for text in texts)
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[int(round(0.95 * (len(latencies) - 1)))]
    print(
        f"\nload: {LOAD_REQUESTS} requests, {LOAD_CLIENTS} clients, {wall:.1f} s: "
        f"{LOAD_REQUESTS / wall:.2f} req/s, p50 {p50:.2f} s, p95 {p95:.2f} s"
    )
