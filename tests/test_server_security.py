"""Issue 25's findings, each against the real decoder, engines and a real uvicorn server:
no upload may make FFmpeg open another file, decoded length is capped, abandoned jobs stop,
slow clients are cut off, a slot is reserved before the body is read, and only trusted
hosts and origins are answered."""

from __future__ import annotations

import dataclasses
import io
import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import av
import httpx
import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient

from whisper_tune.audio import SAMPLE_RATE, AudioTooLong, load_audio
from whisper_tune.engine_settings import EngineSettings
from whisper_tune.errors import AudioError
from whisper_tune.inference.types import TranscribeOptions
from whisper_tune.server import ServerConfig, create_app
from whisper_tune.server.run import uvicorn_config

EXPECTED_WORDS = ("weather", "snow", "tomorrow")  # conftest.ENGLISH_CLIP_TEXT
LOOPBACK = "http://127.0.0.1"


# --- hostile files --------------------------------------------------------------------------


def silence_flac(seconds: float, rate: int = SAMPLE_RATE, channels: int = 1) -> bytes:
    """FLAC of digital silence, written block by block (a duration bomb: ~50 bytes/s)."""
    buffer = io.BytesIO()
    with soundfile.SoundFile(buffer, "w", rate, channels, format="FLAC", subtype="PCM_16") as sound:
        block = np.zeros((rate * 10, channels), dtype=np.int16)
        left = int(seconds * rate)
        while left > 0:
            sound.write(block[: min(left, len(block))])
            left -= len(block)
    return buffer.getvalue()


def unknown_length(flac: bytes) -> bytes:
    """``flac`` with STREAMINFO's total-samples field zeroed ("unknown", as a stream)."""
    data = bytearray(flac)
    data[21] &= 0xF0  # total samples: the low 4 bits of byte 21 and bytes 22-25
    data[22:26] = bytes(4)
    return bytes(data)


def concat_payloads(target: Path) -> list[bytes]:
    """Indirection files naming ``target``: FFmpeg's concat script (relative and absolute),
    an HLS playlist and an SDP description."""
    return [
        f"ffconcat version 1.0\nfile {target.name}\n".encode(),
        f"ffconcat version 1.0\nfile '{target}'\n".encode(),
        f"#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:3,\n{target}\n#EXT-X-ENDLIST\n".encode(),
        b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 0\n",
    ]


# (container, codec, sample rate, file suffix): ordinary formats that must keep decoding
ORDINARY = [
    ("wav", "pcm_s16le", 16000, "wav"),
    ("flac", "flac", 16000, "flac"),
    ("mp3", "libmp3lame", 16000, "mp3"),
    ("ogg", "libopus", 48000, "opus"),
    ("ipod", "aac", 16000, "m4a"),
    ("mp4", "aac", 16000, "mp4"),
    ("mov", "aac", 16000, "mov"),
    ("3gp", "aac", 16000, "3gp"),
    ("webm", "libopus", 48000, "webm"),
    ("matroska", "aac", 16000, "mkv"),
    ("adts", "aac", 16000, "aac"),
    ("amr", "libopencore_amrnb", 8000, "amr"),
    ("aiff", "pcm_s16be", 16000, "aiff"),
    ("caf", "pcm_s16le", 16000, "caf"),
    ("au", "pcm_s16be", 16000, "au"),
    ("w64", "pcm_s16le", 16000, "w64"),
    ("ac3", "ac3", 48000, "ac3"),
    ("avi", "pcm_s16le", 16000, "avi"),
    ("mpegts", "mp2", 16000, "ts"),
    ("wv", "wavpack", 16000, "wv"),
]


def encode(audio: np.ndarray, container: str, codec: str, rate: int) -> bytes:
    """``audio`` (16 kHz mono float32) encoded by PyAV into ``container`` with ``codec``."""
    resampled = av.AudioResampler(format="flt", layout="mono", rate=rate)
    frame = av.AudioFrame.from_ndarray(audio[None, :], format="flt", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        convert = av.AudioResampler(format=stream.codec_context.format.name, layout="mono")
        fifo = av.AudioFifo()
        for chunk in [*resampled.resample(frame), *resampled.resample(None)]:
            for converted in convert.resample(chunk):
                fifo.write(converted)
        size = stream.codec_context.frame_size or 1024
        while fifo.samples:
            for packet in stream.encode(fifo.read(min(size, fifo.samples))):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def said(text: str) -> bool:
    lowered = text.lower()
    return all(word in lowered for word in EXPECTED_WORDS)


def heard_nothing(text: str) -> bool:
    lowered = text.lower()
    return not any(word in lowered for word in EXPECTED_WORDS)


# --- a real server with serve's uvicorn settings --------------------------------------------


@pytest.fixture(scope="module")
def start_server(serve_app):
    """``start_server(config, transcriber) -> base URL``: uvicorn with exactly the settings
    ``whisper-tune serve`` uses (header timeout, connection cap), on a free loopback port."""

    def start(config: ServerConfig, transcriber) -> str:
        def settings(port: int):
            served = dataclasses.replace(config, port=port)
            server_settings = uvicorn_config(create_app(served, transcriber), served)
            server_settings.log_level = "warning"
            return server_settings

        return serve_app(settings=settings)

    return start


@pytest.fixture(scope="module")
def wav(english_clip) -> bytes:
    return english_clip[0].read_bytes()


@pytest.fixture(scope="module")
def long_speech(long_english_file) -> bytes:
    """The 2.5-minute file of 40 sentences three times over (7.5 minutes) as FLAC (~3 MB):
    minutes of decoding, with text that the hallucination guard lets through."""
    audio = load_audio(long_english_file[0])
    buffer = io.BytesIO()
    soundfile.write(buffer, np.tile(audio, 3), SAMPLE_RATE, format="FLAC")
    return buffer.getvalue()


def post(url: str, path: str, audio: bytes, **data) -> httpx.Response:
    field = "file" if path.startswith("/v1") else "audio"
    files = {field: ("x.mp3", audio, "audio/mpeg")}
    return httpx.post(f"{url}{path}", files=files, data=data, timeout=60)


# --- 1. no upload makes FFmpeg open another file ----------------------------------------------


@pytest.mark.parametrize("index", range(4), ids=["concat", "concat-abs", "hls", "sdp"])
def test_indirection_files_never_open_the_file_they_name(english_clip, tmp_path, index):
    target = tmp_path / "private_note.wav"
    target.write_bytes(english_clip[0].read_bytes())
    payload = concat_payloads(target)[index]
    path = tmp_path / "upload.m3u8"
    path.write_bytes(payload)
    for source in (payload, path, str(path)):
        with pytest.raises(AudioError) as caught:
            load_audio(source)
        assert str(caught.value).endswith(": cannot decode audio")  # no errno text
        assert str(target) not in str(caught.value)


def test_concat_upload_is_4xx_and_reveals_nothing(
    start_server, tiny_en_transcriber, tmp_path, english_clip, monkeypatch
):
    """The issue's exploit: a 43-byte ffconcat script named x.mp3, with the note in the
    server's working folder (relative name) and elsewhere (absolute name)."""
    (tmp_path / "private_note.wav").write_bytes(english_clip[0].read_bytes())
    monkeypatch.chdir(tmp_path)
    url = start_server(ServerConfig(), tiny_en_transcriber)
    missing = f"ffconcat version 1.0\nfile {tmp_path / 'no_such.wav'}\n".encode()
    answers = []
    for payload in [*concat_payloads(tmp_path / "private_note.wav")[:2], missing]:
        for path in ("/v1/audio/transcriptions", "/recognition", "/recognition_stream"):
            response = post(url, path, payload)
            assert 400 <= response.status_code < 500, (path, response.text)
            assert heard_nothing(response.text), response.text
            assert "cannot decode audio" in response.text
            answers.append(response.text)
    # an existing and a missing path get the same answer: no probing of the file system
    assert answers[0] == answers[6] and answers[1] == answers[7]


@pytest.mark.parametrize(("container", "codec", "rate", "suffix"), ORDINARY)
def test_ordinary_formats_still_decode(english_clip, tmp_path, container, codec, rate, suffix):
    clip = load_audio(english_clip[0])
    data = encode(clip, container, codec, rate)
    path = tmp_path / f"clip.{suffix}"
    path.write_bytes(data)
    for source in (path, data):
        audio = load_audio(source)
        assert abs(len(audio) - len(clip)) < 0.3 * SAMPLE_RATE, (container, len(audio))
        assert np.sqrt(np.mean(audio**2)) > 0.3 * np.sqrt(np.mean(clip**2))


def test_corrupt_packets_are_skipped_with_a_warning(english_clip, caplog):
    clip = load_audio(english_clip[0])
    data = bytearray(encode(clip, "ipod", "aac", 16000))
    rng = np.random.default_rng(0)
    middle = len(data) // 3
    data[middle : middle + 400] = rng.bytes(400)
    with caplog.at_level(logging.WARNING, "whisper_tune.audio"):
        audio = load_audio(bytes(data))
    assert len(audio) > 0.8 * len(clip)
    assert "packets that did not decode" in caplog.text


# --- 2. decoded length is capped ----------------------------------------------------------------


def test_duration_bombs_stop_at_the_limit():
    bomb = silence_flac(3600)
    assert len(bomb) < 400_000
    for source in (bomb, unknown_length(bomb), silence_flac(120, 192_000, 8)):
        started = time.monotonic()
        with pytest.raises(AudioTooLong, match="limit of 60 s"):
            load_audio(source, max_seconds=60)
        assert time.monotonic() - started < 10
    assert len(load_audio(unknown_length(silence_flac(59)), max_seconds=60)) == 59 * SAMPLE_RATE


def test_duration_bomb_memory_is_bounded_by_the_limit():
    """Peak RSS while refusing an hour of silence whose header does not say its length
    (decoded whole, it is 230 MB of float32) stays near the limit's 60 s (4 MB)."""
    script = textwrap.dedent(
        """
        import resource, sys
        sys.path[:0] = sys.argv[1:]
        from test_server_security import silence_flac, unknown_length
        from whisper_tune.audio import AudioTooLong, load_audio
        bomb = unknown_length(silence_flac(3600))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_audio(bomb, max_seconds=60)
        except AudioTooLong:
            pass
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
        """
    )
    here = str(Path(__file__).parent)
    result = subprocess.run(
        [sys.executable, "-c", script, here], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    grown_mb = int(result.stdout.split()[-1])
    print(f"\nRSS growth while refusing the bomb: {grown_mb} MB")
    assert grown_mb < 40


def test_duration_bomb_upload_is_413_naming_the_limit(start_server, tiny_en_transcriber):
    url = start_server(ServerConfig(max_audio_seconds=60), tiny_en_transcriber)
    bombs = [silence_flac(3600), unknown_length(silence_flac(3600)), silence_flac(90, 192_000, 8)]
    for bomb in bombs:
        for path in ("/v1/audio/transcriptions", "/recognition", "/recognition_stream"):
            started = time.monotonic()
            response = post(url, path, bomb)
            assert response.status_code == 413, response.text
            assert "limit of 60 s" in response.text
            assert time.monotonic() - started < 10


# --- 3. jobs do not outlive their clients ------------------------------------------------------


@pytest.mark.parametrize("engine", ["ct2", "transformers"])
def test_engines_stop_decoding_once_cancelled(
    engine, tiny_en_transcriber, tiny_whisper_en, long_speech
):
    """Cancelled one second in, a 7.5-minute decode ends within the window (or ct2's
    two-minute block) under way."""
    from whisper_tune.inference import load_transcriber

    transcriber = tiny_en_transcriber if engine == "ct2" else load_transcriber(str(tiny_whisper_en))
    cancel = threading.Event()
    options = TranscribeOptions(beam_size=1, cancel=cancel)
    segments, _ = transcriber.transcribe(load_audio(long_speech), options)
    started = time.monotonic()
    threading.Timer(1.0, cancel.set).start()
    decoded = list(segments)
    seconds = time.monotonic() - started
    print(f"\n{engine}: stopped {seconds:.1f} s after the start, {len(decoded)} segments")
    assert seconds < 30
    assert all(segment.end < 180 for segment in decoded)


def _busy(url: str) -> int:
    return httpx.get(f"{url}/health", timeout=10).json()["busy"]


def _wait(condition, seconds: float) -> float:
    """Seconds until ``condition()`` holds; fails after ``seconds``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "condition not met in time"
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.mark.parametrize(
    "path", ["/recognition", "/recognition_stream", "/v1/audio/transcriptions"]
)
def test_client_disconnect_stops_the_job(start_server, tiny_en_transcriber, long_speech, path):
    url = start_server(ServerConfig(engine=EngineSettings(num_workers=1)), tiny_en_transcriber)
    field = "file" if path.startswith("/v1") else "audio"
    stream = {"stream": "true"} if path.startswith("/v1") else {}
    request = httpx.Request(
        "POST", f"{url}{path}", files={field: ("long.flac", long_speech)}, data=stream
    )
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    head += b"".join(f"{k}: {v}\r\n".encode() for k, v in request.headers.items() if k != "host")
    body = request.read()
    with socket.create_connection(("127.0.0.1", urlsplit(url).port)) as sock:
        sock.sendall(head + b"\r\n" + body)
        _wait(lambda: _busy(url) == 1, 30)
        time.sleep(1.0)  # decoding under way
    stopped = _wait(lambda: _busy(url) == 0, 30)  # ct2 checks per segment: one block at most
    cpu = time.process_time()
    time.sleep(2)
    print(f"\n{path}: worker free {stopped:.1f} s after the client left")
    assert time.process_time() - cpu < 1.0  # the process is idle again


def test_job_timeout_stops_the_job(start_server, tiny_en_transcriber, long_speech):
    url = start_server(
        ServerConfig(engine=EngineSettings(num_workers=1), job_timeout=2), tiny_en_transcriber
    )
    started = time.monotonic()
    response = post(url, "/v1/audio/transcriptions", long_speech)
    assert response.status_code == 504, response.text
    assert "job timeout (2 s)" in response.text
    assert time.monotonic() - started < 15
    _wait(lambda: _busy(url) == 0, 10)


# --- 4. slow clients are cut off ----------------------------------------------------------------


def _trickle(
    port: int, head: bytes, drip: bytes, every: float, limit: float
) -> tuple[bytes, float]:
    """Send ``head``, then ``drip`` one byte every ``every`` s until the server answers or
    closes; return what it sent and when (or give up after ``limit`` s)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        sock.settimeout(every)
        for byte in drip:
            try:
                reply = sock.recv(4096)
                answered = time.monotonic() - started
                return reply + _rest_of_reply(sock), answered
            except TimeoutError:
                pass
            except ConnectionError:
                return b"", time.monotonic() - started
            if time.monotonic() - started > limit:
                break
            try:
                sock.sendall(bytes([byte]))
            except ConnectionError:
                return b"", time.monotonic() - started
    raise AssertionError(f"still connected after {limit} s")


def _rest_of_reply(sock: socket.socket) -> bytes:
    """What the server sends after its first packet, until it closes (the reply may arrive in
    several packets: headers first, then the body)."""
    sock.settimeout(5)
    rest = b""
    try:
        while chunk := sock.recv(4096):
            rest += chunk
    except (TimeoutError, ConnectionError):
        pass
    return rest


def test_trickled_headers_are_cut_off(start_server, tiny_en_transcriber):
    url = start_server(ServerConfig(header_timeout=2), tiny_en_transcriber)
    headers = b"Host: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    reply, seconds = _trickle(urlsplit(url).port, b"GET /health HTTP/1.1\r\n", headers, 0.3, 12)
    assert reply == b"" and seconds < 4, (reply, seconds)
    assert _busy(url) == 0  # the server still answers


def test_trickled_body_is_cut_off_at_one_total_deadline(start_server, tiny_en_transcriber):
    url = start_server(ServerConfig(request_timeout=2), tiny_en_transcriber)
    head = (
        b"POST /recognition HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000\r\n\r\n"
    )
    part = b'--b\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'
    reply, seconds = _trickle(urlsplit(url).port, head, part + b"a" * 200, 0.3, 12)
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert b"did not arrive within 2 s" in reply
    assert seconds < 4, seconds


def test_connections_beyond_the_cap_get_503(start_server, tiny_en_transcriber):
    url = start_server(ServerConfig(max_connections=3), tiny_en_transcriber)
    port = urlsplit(url).port
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        for sock in idle:
            sock.sendall(b"GET /health HTTP/1.1\r\n")  # headers never finished
        time.sleep(0.3)
        assert httpx.get(f"{url}/health", timeout=10).status_code == 503
    finally:
        for sock in idle:
            sock.close()
    _wait(lambda: httpx.get(f"{url}/health", timeout=10).status_code == 200, 10)


# --- 5. a slot is reserved before the body is read -------------------------------------------


def test_queue_slot_is_reserved_before_the_upload_is_read(start_server, tiny_en_transcriber, wav):
    url = start_server(
        ServerConfig(engine=EngineSettings(num_workers=1), queue_size=0), tiny_en_transcriber
    )
    head = (
        b"POST /recognition HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n"
    )
    with socket.create_connection(("127.0.0.1", urlsplit(url).port)) as slow_upload:
        slow_upload.sendall(head)  # holds the only slot while its body is "arriving"
        _wait(lambda: httpx.get(f"{url}/health").json()["queued"] == 1, 10)
        refused = post(url, "/recognition", wav)
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) >= 1
    _wait(lambda: httpx.get(f"{url}/health").json()["queued"] == 0, 10)
    assert said(" ".join(r["text"] for r in post(url, "/recognition", wav).json()["results"]))


# --- 6. only trusted hosts and origins ----------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(tiny_en_transcriber):
    with TestClient(create_app(ServerConfig(), tiny_en_transcriber), LOOPBACK) as client:
        yield client


def test_foreign_host_and_origin_are_refused(guarded, wav):
    files = {"audio": ("a.wav", wav, "audio/wav")}
    for headers, status in [
        ({"host": "evil.example"}, 400),
        ({"host": "evil.example:5000"}, 400),
        ({"host": "127.0.0.1.evil.example"}, 400),
        ({"origin": "http://evil.example"}, 403),
        ({"origin": "http://127.0.0.1.evil.example"}, 403),
        ({"origin": "null"}, 403),
        ({"origin": "file://"}, 403),
    ]:
        response = guarded.post("/recognition", files=files, headers=headers)
        assert response.status_code == status, (headers, response.text)
        assert guarded.get("/health", headers=headers).status_code == status
    for host in ("127.0.0.1", "127.0.0.1:5000", "localhost:5000", "[::1]:5000", "LOCALHOST"):
        assert guarded.get("/health", headers={"host": host}).status_code == 200, host
    same_origin = {"origin": "http://127.0.0.1", "host": "127.0.0.1"}
    response = guarded.post("/recognition", files=files, headers=same_origin)
    assert response.status_code == 200 and said(response.text)


def test_allowed_hosts_widen_the_trusted_names(tiny_en_transcriber):
    app = create_app(ServerConfig(allowed_hosts=("asr.lan",)), tiny_en_transcriber)
    with TestClient(app, "http://asr.lan") as client:
        assert client.get("/health").status_code == 200
        assert client.get("/health", headers={"origin": "http://asr.lan:8080"}).is_success
        assert client.get("/health", headers={"host": "other.lan"}).status_code == 400
    anyone = create_app(ServerConfig(allowed_hosts=("*",)), tiny_en_transcriber)
    with TestClient(anyone, "http://whatever.example") as client:
        assert client.get("/health").status_code == 200
        assert client.get("/health", headers={"origin": "http://evil.example"}).status_code == 403


# --- low: headers, /health, the page -----------------------------------------------------------


def test_security_headers_and_page_policy(guarded):
    page = guarded.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'sha256-" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert "sessionStorage" in page.text and "localStorage" not in page.text
    for response in (page, guarded.get("/health"), guarded.get("/v1/models")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "content-security-policy" in response.headers


def test_health_says_only_ok_without_the_key(tiny_en_transcriber):
    app = create_app(ServerConfig(api_key="k3y"), tiny_en_transcriber)
    with TestClient(app, LOOPBACK) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/health", headers={"X-API-Key": "k3y"}).json()["model"] == "tiny.en"
