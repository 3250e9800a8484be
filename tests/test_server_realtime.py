"""``/v1/realtime``: the openai SDK's realtime client against a real uvicorn, then bad input
(each answered by an error event or a clean close, other sessions unaffected)."""

from __future__ import annotations

import base64
import json
import threading
import time

import httpx
import jiwer
import numpy as np
import pytest
from openai import OpenAI
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.sync.client import connect

from whisper_tune.audio import SAMPLE_RATE, load_audio, resample
from whisper_tune.inference import TranscribeOptions
from whisper_tune.server import ServerConfig, create_app
from whisper_tune.server.run import uvicorn_config
from whisper_tune.text import normalize_english

LOOPBACK = "http://127.0.0.1"
GA_SESSION = {
    "type": "session.update",
    "session": {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "whisper-1", "language": "en"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
            }
        },
    },
}


@pytest.fixture(scope="module")
def speech(english_clip) -> np.ndarray:
    """The clip at 16 kHz with half a second of silence before and a second after."""
    audio = load_audio(english_clip[0])
    return np.concatenate((np.zeros(SAMPLE_RATE // 2), audio, np.zeros(SAMPLE_RATE))).astype(
        np.float32
    )


def pcm16(audio: np.ndarray, rate: int = 24000) -> bytes:
    samples = resample(audio, SAMPLE_RATE, rate)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def appends(audio: np.ndarray, seconds: float = 0.1, rate: int = 24000) -> list[dict]:
    data = pcm16(audio, rate)
    step = int(seconds * rate) * 2
    return [
        {
            "type": "input_audio_buffer.append",
            "audio": base64.b64encode(data[i : i + step]).decode(),
        }
        for i in range(0, len(data), step)
    ]


@pytest.fixture(scope="module")
def live_url(serve_app, tiny_en_transcriber):
    def settings(port: int):
        config = ServerConfig(port=port, realtime_sessions=2, realtime_max_event_mb=0.5)
        return uvicorn_config(create_app(config, tiny_en_transcriber), config)

    return serve_app(settings=settings)


@pytest.mark.timeout(60)
def test_openai_sdk_realtime_client_gets_deltas_and_the_offline_transcript(
    live_url, speech, tiny_en_transcriber
):
    offline = " ".join(
        s.text for s in tiny_en_transcriber.transcribe(speech, TranscribeOptions())[0]
    )
    client = OpenAI(base_url=f"{live_url}/v1", api_key="unused", max_retries=0)
    with client.realtime.connect(model="whisper-1") as connection:
        assert connection.recv().type == "session.created"
        connection.send(GA_SESSION)
        updated = connection.recv()
        assert updated.type == "session.updated"

        def play() -> None:  # at real-time speed: one 100 ms append every 100 ms
            started = time.monotonic()
            for i, event in enumerate(appends(speech)):
                time.sleep(max(0.0, started + i * 0.1 - time.monotonic()))
                connection.send(event)

        player = threading.Thread(target=play)
        player.start()
        kinds, deltas = [], []
        while True:
            event = connection.recv()
            kinds.append(event.type)
            assert event.type != "error", event
            if event.type == "conversation.item.input_audio_transcription.delta":
                deltas.append(event.delta)
            if event.type == "conversation.item.input_audio_transcription.completed":
                completed = event
                break
        player.join()
    assert kinds[0] == "input_audio_buffer.speech_started"
    assert kinds.index("input_audio_buffer.speech_stopped") < kinds.index(
        "input_audio_buffer.committed"
    )
    assert deltas  # how many depends on the load: a slow decode takes in more audio
    assert "".join(deltas) == completed.transcript
    assert completed.usage.type == "duration"
    error = jiwer.wer(normalize_english(offline), normalize_english(completed.transcript))
    assert error <= 0.05, (offline, completed.transcript)


def server_threads() -> list[str]:
    """Thread names, without the websockets clients' own and tqdm's monitor."""
    client = ("(recv_events)", "(keepalive)", "tqdm_monitor")
    return [t.name for t in threading.enumerate() if not t.name.endswith(client)]


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://") + "/v1/realtime"


def test_a_client_vanishing_mid_utterance_or_sending_huge_frames_harms_no_one(live_url, speech):
    before = server_threads()
    for _ in range(3):  # vanish mid-utterance, three times
        with connect(ws_url(live_url)) as ws:
            json.loads(ws.recv())
            for event in appends(speech[: 2 * SAMPLE_RATE]):
                ws.send(json.dumps(event))
            ws.socket.close()  # no close frame: the connection just drops
        deadline = time.monotonic() + 5
        while httpx.get(f"{live_url}/health").json()["realtime_sessions"]:  # session ended
            assert time.monotonic() < deadline
            time.sleep(0.05)
    with connect(ws_url(live_url), max_size=None) as ws:  # a 2 MiB frame: over uvicorn's 1 MiB
        json.loads(ws.recv())
        ws.send("x" * (2 * 1024 * 1024))
        with pytest.raises(Exception, match="1009"):
            ws.recv(timeout=10)
    with connect(ws_url(live_url)) as ws:  # a fresh session still transcribes
        json.loads(ws.recv())
        for event in appends(speech):
            ws.send(json.dumps(event))
        while (event := json.loads(ws.recv(timeout=30)))["type"] != (
            "conversation.item.input_audio_transcription.completed"
        ):
            assert event["type"] != "error", event
        assert "snow" in event["transcript"].lower()
    time.sleep(0.5)
    assert set(server_threads()) - set(before) <= {"whisper-live_0", "whisper-live_1"}


@pytest.fixture(scope="module")
def app(tiny_en_transcriber):
    config = ServerConfig(
        api_key="secret", realtime_sessions=1, realtime_idle_timeout=1.0, realtime_max_event_mb=0.1
    )
    return create_app(config, tiny_en_transcriber)


KEY = {"Authorization": "Bearer secret"}
WS = "ws://127.0.0.1/v1/realtime"


def error_of(ws) -> dict:
    event = ws.receive_json()
    assert event["type"] == "error", event
    return event["error"]


def test_bad_events_get_error_events_and_the_session_goes_on(app):
    with (
        TestClient(app, LOOPBACK) as client,
        client.websocket_connect(WS, headers=KEY) as ws,
    ):
        assert ws.receive_json()["type"] == "session.created"
        ws.send_text("{not json")
        assert error_of(ws)["code"] == "invalid_json"
        ws.send_bytes(bytes(range(256)) * 4)
        assert error_of(ws)["code"] == "invalid_frame"
        ws.send_json([1, 2])
        assert error_of(ws)["param"] == "type"
        ws.send_json({"type": "response.create"})
        assert error_of(ws)["code"] == "unknown_event"
        wrong_rate = json.loads(json.dumps(GA_SESSION))
        wrong_rate["session"]["audio"]["input"]["format"]["rate"] = 44100
        ws.send_json(wrong_rate)
        assert "44100" in error_of(ws)["message"]
        ws.send_json({"type": "transcription_session.update",
                      "session": {"input_audio_format": "g711_ulaw"}})  # fmt: skip
        assert error_of(ws)["param"] == "session.input_audio_format"
        ws.send_json({"type": "session.update", "session": {"type": "realtime"}})
        assert error_of(ws)["param"] == "session.type"
        ws.send_json({"type": "input_audio_buffer.append", "audio": "%%%"})
        assert "base64" in error_of(ws)["message"]
        ws.send_json({"type": "input_audio_buffer.append", "audio": "AAAA"})  # 3 bytes
        assert "even" in error_of(ws)["message"]
        ws.send_text(json.dumps({"type": "x", "pad": "y" * 200_000}))
        assert error_of(ws)["code"] == "event_too_large"
        ws.send_json({"type": "input_audio_buffer.commit", "event_id": "c1"})
        error = error_of(ws)
        assert error["code"] == "input_audio_buffer_commit_empty" and error["event_id"] == "c1"
        manual = {"input_audio_format": "pcm16", "turn_detection": None}
        ws.send_json({"type": "transcription_session.update", "session": manual})
        updated = ws.receive_json()
        assert updated["type"] == "transcription_session.updated"
        assert updated["session"]["turn_detection"] is None
        ws.send_json({"type": "input_audio_buffer.clear"})
        assert ws.receive_json()["type"] == "input_audio_buffer.cleared"
        unknown = {"input_audio_transcription": {"model": "gpt-4o-transcribe"}}
        ws.send_json({"type": "transcription_session.update", "session": unknown})
        error = error_of(ws)
        assert error["code"] == "model_not_found" and "available: tiny.en" in error["message"]
        served = {"input_audio_transcription": {"model": "tiny.en"}}
        ws.send_json({"type": "transcription_session.update", "session": served})
        updated = ws.receive_json()
        assert updated["session"]["input_audio_transcription"]["model"] == "tiny.en"


def test_key_session_cap_and_idle_timeout(app):
    with TestClient(app, LOOPBACK) as client:
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(WS) as ws:
            ws.receive_json()
        assert refused.value.code == 1008
        protocols = ["realtime", "openai-insecure-api-key.secret"]  # a browser's way
        with client.websocket_connect(WS, subprotocols=protocols) as ws:
            assert ws.accepted_subprotocol == "realtime"
            assert ws.receive_json()["type"] == "session.created"
            with client.websocket_connect(WS, headers=KEY) as second:
                assert error_of(second)["code"] == "session_limit"
                with pytest.raises(WebSocketDisconnect) as closed:
                    second.receive_json()
                assert closed.value.code == 1013
            assert error_of(ws)["code"] == "idle_timeout"  # after a second without events
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 1000


def test_page_policy_allows_the_live_worklet_of_this_host_only(tiny_en_transcriber):
    app = create_app(ServerConfig(allowed_hosts=("*",)), tiny_en_transcriber)
    with TestClient(app, LOOPBACK) as client:
        policy = client.get("/").headers["content-security-policy"]
        assert "script-src 'sha256-" in policy and " http://127.0.0.1/live-worklet.js;" in policy
        odd = client.get("/", headers={"host": "a.example; script-src *"})
        policy = odd.headers["content-security-policy"]
        assert "live-worklet" not in policy and "script-src *" not in policy
        worklet = client.get("/live-worklet.js")
        assert worklet.headers["content-type"].startswith("text/javascript")
        assert "registerProcessor" in worklet.text
