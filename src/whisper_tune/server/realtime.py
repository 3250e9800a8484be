"""``/v1/realtime``: live transcription over a WebSocket, speaking the transcription subset
of the OpenAI Realtime API (see :mod:`whisper_tune.server.realtime_protocol`), so the
``openai`` SDK's realtime client works with ``base_url`` pointed here.

Each session owns a :class:`~whisper_tune.inference.streaming.StreamingTranscriber` driven by
one decoder task: appended audio queues up while a decode runs on the server's live-decoding
threads, and the next decode takes all of it. Committed words go out as
``conversation.item.input_audio_transcription.delta`` events, a turn's end (server VAD or
``input_audio_buffer.commit``) as ``input_audio_buffer.committed`` and ``...completed``.
The API key is the HTTP API's (header, or the ``openai-insecure-api-key.<key>`` subprotocol
browsers use); sessions are capped (``--realtime_sessions``) and closed after
``--realtime_idle_timeout`` seconds without an event. A bad event gets an ``error`` event and
the session goes on; a client that vanishes only ends its own session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from fastapi import APIRouter, WebSocket

from whisper_tune.audio import SAMPLE_RATE
from whisper_tune.inference.postprocess import word_separator
from whisper_tune.inference.streaming import StreamingSettings, StreamingTranscriber, StreamUpdate
from whisper_tune.server.models import UnknownModel
from whisper_tune.server.realtime_protocol import (
    PARTIAL_EVENT,
    ProtocolError,
    Session,
    decode_audio,
    error_event,
    new_id,
    parse_event,
    server_event,
    update_session,
)
from whisper_tune.server.state import ServerState, has_api_key

log = logging.getLogger("whisper_tune.server")
router = APIRouter()

MAX_PENDING_SECONDS = 30.0  # audio queued behind a running decode before appends are refused
_TRANSCRIPTION = "conversation.item.input_audio_transcription"


@dataclass
class RealtimeLimits:
    """The live-decoding threads and the cap on open sessions, shared by all sessions."""

    sessions: int
    threads: int
    open: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self.executor = ThreadPoolExecutor(self.threads, thread_name_prefix="whisper-live")

    def stop(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)

    def stats(self) -> dict[str, int]:
        return {"realtime_sessions": self.open, "realtime_capacity": self.sessions}

    def enter(self) -> bool:
        with self.lock:
            if self.open >= self.sessions:
                return False
            self.open += 1
            return True

    def leave(self) -> None:
        with self.lock:
            self.open -= 1


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    state: ServerState = websocket.app.state.server
    limits: RealtimeLimits = websocket.app.state.realtime
    if not has_api_key(websocket):
        await websocket.close(1008, "missing or wrong API key")
        return
    offered = websocket.scope.get("subprotocols", [])
    await websocket.accept(subprotocol="realtime" if "realtime" in offered else None)
    if not limits.enter():
        error = ProtocolError(
            f"too many realtime sessions (at most {limits.sessions}); retry later",
            "session_limit",
        )
        await websocket.send_json(error_event(error))
        await websocket.close(1013, "too many realtime sessions")
        return
    try:
        await LiveSession(websocket, state, limits).run()
    finally:
        limits.leave()


class LiveSession:
    """One client's realtime session: a receive loop and a decoder task."""

    def __init__(self, websocket: WebSocket, state: ServerState, limits: RealtimeLimits):
        self.websocket = websocket
        self.state = state
        self.limits = limits
        self.session = Session()
        self.model_lease = contextlib.ExitStack()  # keeps the session's model loaded
        self.stream = self._new_stream()
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.pending = 0  # samples queued for the decoder
        self.send_lock = asyncio.Lock()
        self.closed = False
        self.item: str | None = None  # the turn being transcribed
        self.item_text = False  # whether a delta went out for it
        self.previous_item: str | None = None
        self.partial = ""

    async def run(self) -> None:
        await self.send(server_event("session.created", session=self.session.describe("session")))
        decoder = asyncio.create_task(self._decode_loop())
        try:
            await self._receive_loop()
        finally:
            self.closed = True
            decoder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await decoder
            self.model_lease.close()  # idle from now: --model_ttl may unload it

    # --- receiving -------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        config = self.state.config
        limit = int(config.realtime_max_event_mb * 1024 * 1024)
        while not self.closed:
            try:
                message = await asyncio.wait_for(
                    self.websocket.receive(), config.realtime_idle_timeout
                )
            except TimeoutError:
                error = ProtocolError(
                    f"no event for {config.realtime_idle_timeout:g} s: session closed",
                    "idle_timeout",
                )
                await self.send(error_event(error))
                await self._close(1000, "idle timeout")
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            event = None
            try:
                if text is None:
                    raise ProtocolError(
                        "binary frames are not events: send JSON text frames", "invalid_frame"
                    )
                if len(text) > limit:
                    raise ProtocolError(
                        f"event larger than {config.realtime_max_event_mb:g} MiB: send audio "
                        "in smaller appends",
                        "event_too_large",
                    )
                event = parse_event(text)
                await self._handle(event)
            except ProtocolError as exc:
                await self.send(error_event(exc, event))

    async def _handle(self, event: dict) -> None:
        kind = event["type"]
        if kind in ("session.update", "transcription_session.update"):
            session, family = update_session(self.session, event)
            try:  # the transcription model: one this server offers (whisper-1: the default)
                self.state.models.resolve(session.model)
            except UnknownModel as exc:
                raise ProtocolError(str(exc), "model_not_found", "model") from None
            self.session = session
            await self.inbox.put(("configure", None))
            await self.send(
                server_event(f"{family}.updated", session=self.session.describe(family))
            )
        elif kind == "input_audio_buffer.append":
            audio = decode_audio(event, self.session.rate)
            if self.pending + len(audio) > MAX_PENDING_SECONDS * SAMPLE_RATE:
                raise ProtocolError(
                    "audio arrives faster than it can be transcribed: this append was dropped",
                    "buffer_overflow",
                )
            self.pending += len(audio)
            await self.inbox.put(("audio", audio))
        elif kind == "input_audio_buffer.commit":
            await self.inbox.put(("commit", event))
        elif kind == "input_audio_buffer.clear":
            await self.inbox.put(("clear", None))
        else:
            raise ProtocolError(
                f"unsupported event type {kind!r} (this server only transcribes)",
                "unknown_event",
                "type",
            )

    # --- decoding --------------------------------------------------------------------

    async def _decode_loop(self) -> None:
        """Run the session's events in order; audio queued behind a decode is decoded at once."""
        try:
            while True:
                batch = [await self.inbox.get()]
                while not self.inbox.empty():
                    batch.append(self.inbox.get_nowait())
                audio: list[np.ndarray] = []
                for kind, value in batch:
                    if kind == "audio":
                        audio.append(value)
                        continue
                    await self._decode(audio)
                    audio = []
                    await self._control(kind, value)
                await self._decode(audio)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("realtime decoding failed")
            await self.send(
                server_event(
                    "error",
                    error={
                        "type": "server_error",
                        "code": "decoding_failed",
                        "message": "transcription failed (logged); session closed",
                    },
                )  # fmt: skip
            )
            await self._close(1011, "transcription failed")

    async def _control(self, kind: str, value) -> None:
        if kind == "commit":
            await self._commit(value)
        elif kind == "clear":
            self.stream.clear()
            self.item, self.item_text, self.partial = None, False, ""
            await self.send(server_event("input_audio_buffer.cleared"))
        else:  # configure: the new settings apply from here on (a model may need loading)
            loop = asyncio.get_running_loop()
            self.stream = await loop.run_in_executor(self.limits.executor, self._new_stream)

    async def _decode(self, blocks: list[np.ndarray]) -> None:
        if not blocks:
            return
        audio = np.concatenate(blocks)
        self.pending -= len(audio)
        loop = asyncio.get_running_loop()
        updates = await loop.run_in_executor(self.limits.executor, self.stream.process, audio)
        for update in updates:
            await self._emit(update)

    async def _commit(self, event: dict) -> None:
        loop = asyncio.get_running_loop()
        update = await loop.run_in_executor(self.limits.executor, self.stream.end_turn)
        if update.turn is None and not update.committed:
            await self.send(
                error_event(
                    ProtocolError(
                        "no speech to commit in the input audio buffer",
                        "input_audio_buffer_commit_empty",
                    ),
                    event,
                )  # fmt: skip
            )
            return
        await self._emit(update)

    async def _emit(self, update: StreamUpdate) -> None:
        """The Realtime events for one update."""
        if update.speech_started is not None and self.session.server_vad:
            self._open_item()
            await self.send(
                server_event(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=round(update.speech_started * 1000),
                    item_id=self.item,
                )
            )
        if update.committed:
            self._open_item()
            separator = word_separator(update.language or "en") if self.item_text else ""
            await self.send(
                server_event(
                    f"{_TRANSCRIPTION}.delta",
                    item_id=self.item,
                    content_index=0,
                    delta=separator + update.committed_text,
                )
            )
            self.item_text = True
        if self.session.partials and update.turn is None and update.partial_text != self.partial:
            self.partial = update.partial_text
            self._open_item()
            await self.send(server_event(PARTIAL_EVENT, item_id=self.item, text=self.partial))
        if update.turn is not None:
            await self._complete(update)

    async def _complete(self, update: StreamUpdate) -> None:
        turn = update.turn
        self._open_item()
        item = self.item
        if self.session.server_vad:
            await self.send(
                server_event(
                    "input_audio_buffer.speech_stopped",
                    audio_end_ms=round(turn.end * 1000),
                    item_id=item,
                )
            )
        await self.send(
            server_event(
                "input_audio_buffer.committed", previous_item_id=self.previous_item, item_id=item
            )
        )
        await self.send(
            server_event(
                f"{_TRANSCRIPTION}.completed",
                item_id=item,
                content_index=0,
                transcript=turn.text,
                usage={"type": "duration", "seconds": round(turn.end - turn.start, 3)},
                start=turn.start,  # extensions: the turn's place in the stream
                end=turn.end,
            )
        )
        self.previous_item, self.item, self.item_text, self.partial = item, None, False, ""

    def _open_item(self) -> None:
        if self.item is None:
            self.item = new_id("item")

    def _new_stream(self) -> StreamingTranscriber:
        session = self.session
        options = self.state.options(language=session.language, initial_prompt=session.prompt)
        settings = session.settings(StreamingSettings())
        models = self.state.models
        lease = contextlib.ExitStack()
        transcriber = lease.enter_context(models.use(models.resolve(session.model)))
        self.model_lease.close()
        self.model_lease = lease
        return StreamingTranscriber(transcriber, options, settings)

    # --- sending ---------------------------------------------------------------------

    async def send(self, event: dict) -> None:
        """Send one event; a client that has gone only ends this session."""
        if self.closed:
            return
        async with self.send_lock:
            try:
                await self.websocket.send_json(event)
            except Exception:  # the client vanished: the receive loop sees the disconnect
                self.closed = True

    async def _close(self, code: int, reason: str) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            await self.websocket.close(code, reason)
