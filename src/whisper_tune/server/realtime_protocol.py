"""The transcription subset of the OpenAI Realtime API: client events read and checked,
server events built.

Both spellings of the session update are read: the GA ``session.update`` (``session.type``
``transcription``, ``session.audio.input.{format, transcription, turn_detection}``) and the
beta ``transcription_session.update`` (``input_audio_format`` ``pcm16``,
``input_audio_transcription``, ``turn_detection``); the answer uses the same spelling. Audio is
16-bit little-endian mono PCM at 24 kHz (OpenAI's rate) or 16 kHz (Whisper's, an extension).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import uuid
from dataclasses import dataclass

import numpy as np

from whisper_tune.audio import SAMPLE_RATE, resample
from whisper_tune.errors import WhisperTuneError
from whisper_tune.inference.streaming import StreamingSettings
from whisper_tune.languages import language_code

OPENAI_RATE = 24000
RATES = (OPENAI_RATE, SAMPLE_RATE)
PARTIAL_EVENT = "conversation.item.input_audio_transcription.partial"  # opt-in extension
_PARTIAL_INCLUDE = "item.input_audio_transcription.partial"
_BETA = "transcription_session"


class ProtocolError(Exception):
    """A client event the server refuses; becomes an ``error`` event, the session goes on."""

    def __init__(self, message: str, code: str = "invalid_value", param: str | None = None):
        super().__init__(message)
        self.message, self.code, self.param = message, code, param


@dataclass(frozen=True)
class Session:
    """What a session update set: audio rate, decoding language and prompt, turn detection."""

    rate: int = OPENAI_RATE
    language: str | None = None
    prompt: str | None = None
    model: str = "whisper-1"
    server_vad: bool = True
    threshold: float = StreamingSettings.vad_threshold
    silence_ms: int = int(StreamingSettings.end_silence_seconds * 1000)
    partials: bool = False  # send PARTIAL_EVENT (the web page asks for it)

    def settings(self, base: StreamingSettings) -> StreamingSettings:
        return dataclasses.replace(
            base,
            vad=self.server_vad,
            vad_threshold=self.threshold,
            end_silence_seconds=self.silence_ms / 1000,
        )

    def describe(self, family: str) -> dict:
        """The session as the ``*.created`` / ``*.updated`` events show it."""
        transcription = {"model": self.model, "language": self.language, "prompt": self.prompt}
        vad = (
            {
                "type": "server_vad",
                "threshold": self.threshold,
                "silence_duration_ms": self.silence_ms,
                "prefix_padding_ms": 0,
            }
            if self.server_vad
            else None
        )
        if family == _BETA:
            return {
                "id": "sess_whisper_tune",
                "object": "realtime.transcription_session",
                "input_audio_format": "pcm16" if self.rate == OPENAI_RATE else "pcm16_16k",
                "input_audio_transcription": transcription,
                "turn_detection": vad,
            }
        return {
            "type": "transcription",
            "id": "sess_whisper_tune",
            "object": "realtime.transcription_session",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": self.rate},
                    "transcription": transcription,
                    "turn_detection": vad,
                }
            },
        }


def parse_event(text: str) -> dict:
    """One client event: a JSON object with a string ``type``."""
    try:
        event = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"the event is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ProtocolError("an event must be a JSON object with a string 'type'", param="type")
    return event


def update_session(current: Session, event: dict) -> tuple[Session, str]:
    """The session after a ``session.update`` / ``transcription_session.update``, and the
    family (``session`` or ``transcription_session``) the answer is spelled in."""
    family = event["type"].rsplit(".", 1)[0]
    body = _object(event, "session", "session")
    if family == _BETA:
        fields = _beta_fields(body)
    else:
        if body.get("type", "transcription") != "transcription":
            raise ProtocolError(
                "this server only transcribes: session.type must be 'transcription'",
                param="session.type",
            )
        audio = _object(_object(body, "audio", "session.audio"), "input", "session.audio.input")
        fields = _ga_fields(audio)
    changes = {}
    if "rate" in fields:
        changes["rate"] = fields["rate"]
    if "transcription" in fields:
        changes.update(_transcription(fields["transcription"], fields["prefix"]))
    if "turn_detection" in fields:
        changes.update(_turn_detection(fields["turn_detection"], fields["prefix"]))
    include = body.get("include")
    if include is not None:
        changes["partials"] = isinstance(include, list) and _PARTIAL_INCLUDE in include
    return dataclasses.replace(current, **changes), family


def _ga_fields(audio: dict) -> dict:
    fields: dict = {"prefix": "session.audio.input"}
    if "format" in audio:
        fmt = _object(audio, "format", "session.audio.input.format")
        if fmt.get("type", "audio/pcm") != "audio/pcm":
            raise ProtocolError(
                f"unsupported audio format {fmt.get('type')!r}: use audio/pcm (16-bit mono)",
                param="session.audio.input.format.type",
            )
        fields["rate"] = _rate(fmt.get("rate", OPENAI_RATE), "session.audio.input.format.rate")
    for name in ("transcription", "turn_detection"):
        if name in audio:
            fields[name] = audio[name]
    return fields


def _beta_fields(body: dict) -> dict:
    fields: dict = {"prefix": "session"}
    if "input_audio_format" in body:
        fmt = body["input_audio_format"]
        formats = {"pcm16": OPENAI_RATE, "pcm16_16k": SAMPLE_RATE}
        if fmt not in formats:
            raise ProtocolError(
                f"unsupported input_audio_format {fmt!r}: use pcm16 (24 kHz) or pcm16_16k",
                param="session.input_audio_format",
            )
        fields["rate"] = formats[fmt]
    if "input_audio_transcription" in body:
        fields["transcription"] = body["input_audio_transcription"]
    if "turn_detection" in body:
        fields["turn_detection"] = body["turn_detection"]
    return fields


def _rate(value, param: str) -> int:
    if value not in RATES:
        raise ProtocolError(f"unsupported sample rate {value!r}: use 24000 or 16000", param=param)
    return int(value)


def _transcription(value, prefix: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError("must be an object", param=f"{prefix}.transcription")
    changes: dict = {}
    if value.get("language"):
        try:
            changes["language"] = language_code(str(value["language"]))
        except WhisperTuneError as exc:
            raise ProtocolError(str(exc), param=f"{prefix}.transcription.language") from None
    if "prompt" in value:
        changes["prompt"] = str(value["prompt"] or "") or None
    if value.get("model"):
        changes["model"] = str(value["model"])
    return changes


def _turn_detection(value, prefix: str) -> dict:
    param = f"{prefix}.turn_detection"
    if value is None:
        return {"server_vad": False}
    if not isinstance(value, dict) or value.get("type") not in ("server_vad", "semantic_vad"):
        raise ProtocolError("turn_detection must be null or {type: server_vad}", param=param)
    changes: dict = {"server_vad": True}
    threshold = value.get("threshold")
    if threshold is not None:
        if not isinstance(threshold, int | float) or not 0 < threshold < 1:
            raise ProtocolError("threshold must be between 0 and 1", param=f"{param}.threshold")
        changes["threshold"] = float(threshold)
    silence = value.get("silence_duration_ms")
    if silence is not None:
        if not isinstance(silence, int) or not 100 <= silence <= 10000:
            raise ProtocolError(
                "silence_duration_ms must be an integer from 100 to 10000",
                param=f"{param}.silence_duration_ms",
            )
        changes["silence_ms"] = silence
    return changes


def decode_audio(event: dict, rate: int) -> np.ndarray:
    """An ``input_audio_buffer.append`` event's base64 PCM16 as 16 kHz float32."""
    data = event.get("audio")
    if not isinstance(data, str):
        raise ProtocolError("'audio' must be a base64 string", param="audio")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("'audio' is not valid base64", param="audio") from None
    if len(raw) % 2:
        raise ProtocolError("'audio' must be 16-bit PCM: an even number of bytes", param="audio")
    samples = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    return resample(samples, rate, SAMPLE_RATE).astype(np.float32)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def server_event(kind: str, **fields) -> dict:
    return {"type": kind, "event_id": new_id("event"), **fields}


def error_event(error: ProtocolError, client_event: dict | None = None) -> dict:
    return server_event(
        "error",
        error={
            "type": "invalid_request_error",
            "code": error.code,
            "message": error.message,
            "param": error.param,
            "event_id": (client_event or {}).get("event_id"),
        },
    )


def _object(parent: dict, key: str, param: str) -> dict:
    value = parent.get(key, {})
    if not isinstance(value, dict):
        raise ProtocolError(f"'{param}' must be an object", param=param)
    return value
