"""The OpenAPI description of the upload forms (parsed by hand in :mod:`forms`, so FastAPI
cannot derive it): each endpoint's multipart fields, declared once, for ``/docs``."""

from __future__ import annotations

from typing import Any

from whisper_tune.server.request_options import MAX_PROMPT_CHARS

_FLAG = {"type": "string", "enum": ["1", "0", "true", "false"]}
_TEXT = {"type": "string", "maxLength": MAX_PROMPT_CHARS}
DECODING: dict[str, tuple[dict, str]] = {
    "model": (
        {"type": "string"},
        "a served model's id (GET /v1/models); absent or whisper-1: "
        "the default (first) model; unknown: 404 listing them",
    ),
    "language": ({"type": "string"}, "language code or name (zh, english...); absent: detect"),
    "prompt": (_TEXT, "text the decoder continues from (names, spelling, style)"),
    "hotwords": (_TEXT, "words to favour, given to the decoder before each window"),
    "temperature": (
        {"type": "number", "minimum": 0, "maximum": 1},
        "0 or absent: from 0, raised when a window fails; else fixed",
    ),
    "beam_size": (
        {"type": "integer", "minimum": 1},
        "beam width (1 = greedy) up to the server's --max_beam_size; absent: its --beam_size",
    ),
    "vad_filter": (_FLAG, "skip non-speech with the Silero VAD (absent: the server's setting)"),
    "to_simple": (_FLAG, "convert Chinese output to simplified characters"),
    "remove_pun": (_FLAG, "remove punctuation"),
}
SEED = {
    "task": ({"type": "string", "enum": ["transcribe", "translate"]}, "translate: to English"),
    "word_timestamps": (_FLAG, "add each segment's words with their times"),
}
OPENAI = {
    "response_format": (
        {"type": "string", "enum": ["json", "text", "srt", "vtt", "verbose_json"]},
        "default json",
    ),
    "timestamp_granularities[]": (
        {"type": "array", "items": {"type": "string", "enum": ["segment", "word"]}},
        "word: word timestamps (verbose_json)",
    ),
    "stream": (_FLAG, "server-sent events: transcript.text.delta per segment, then done"),
}


def upload_form(file_field: str, fields: dict[str, tuple[dict, str]]) -> dict[str, Any]:
    """``openapi_extra`` for a route reading ``multipart/form-data``."""
    properties = {file_field: {"type": "string", "format": "binary", "description": "audio"}}
    properties |= {name: {**schema, "description": text} for name, (schema, text) in fields.items()}
    schema = {"type": "object", "required": [file_field], "properties": properties}
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


SEED_FORM = upload_form("audio", {**DECODING, **SEED})
OPENAI_FORM = upload_form("file", {**DECODING, **OPENAI})
