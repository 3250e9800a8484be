"""The decoding options a request may set, within the server's limits (422 beyond).

Both APIs accept ``model``, ``prompt``, ``hotwords``, ``temperature``, ``beam_size`` and
``vad_filter``; word timestamps are OpenAI's ``timestamp_granularities[]=word`` and the seed
API's ``word_timestamps`` flag. Absent fields keep the server's defaults.
"""

from __future__ import annotations

from typing import Any

from whisper_tune.server.errors import ApiError
from whisper_tune.server.forms import Upload
from whisper_tune.server.models import UnknownModel
from whisper_tune.server.state import ServerState

MAX_PROMPT_CHARS = 2000  # Whisper keeps the last 223 prompt tokens; this bounds tokenizing
MODEL_FIELD = "model"


def requested_model(upload: Upload, state: ServerState) -> str:
    """The model the request names (the default when absent or ``whisper-1``); 404 listing
    the served ones when unknown."""
    try:
        return state.models.resolve(upload.text(MODEL_FIELD, max_chars=200))
    except UnknownModel as exc:
        raise ApiError(404, str(exc), MODEL_FIELD) from None


def decoding_options(upload: Upload, state: ServerState) -> dict[str, Any]:
    """Keyword arguments for :meth:`ServerState.options` from the shared fields."""
    config = state.config
    beam_size = upload.integer("beam_size", 1, config.max_beam_size)
    options: dict[str, Any] = {
        "beam_size": config.beam_size if beam_size is None else beam_size,
        "vad_filter": upload.flag("vad_filter", config.vad_filter),
        "initial_prompt": upload.text("prompt", MAX_PROMPT_CHARS),
        "hotwords": upload.text("hotwords", MAX_PROMPT_CHARS),
    }
    temperature = upload.number("temperature", 0.0, 1.0)
    if temperature:  # OpenAI's rule: 0 (or absent) lets the decoder raise it on failure
        options["temperature"] = temperature
    return options
