"""What request handlers share: the config, the worker pool, the models and the metrics."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request
from starlette.requests import HTTPConnection

from whisper_tune.inference.types import TranscribeOptions
from whisper_tune.server.config import ServerConfig
from whisper_tune.server.errors import ApiError
from whisper_tune.server.metrics import Metrics
from whisper_tune.server.models import ModelRegistry
from whisper_tune.server.workers import WorkerPool


@dataclass
class ServerState:
    config: ServerConfig
    pool: WorkerPool
    models: ModelRegistry
    metrics: Metrics

    def options(self, **overrides) -> TranscribeOptions:
        """Decoding options: the server's beam size and VAD setting unless the request's own
        say otherwise."""
        defaults = {"beam_size": self.config.beam_size, "vad_filter": self.config.vad_filter}
        return TranscribeOptions(**(defaults | overrides))


KEY_SUBPROTOCOL = "openai-insecure-api-key."  # how a browser's WebSocket sends the key


def server_state(request: HTTPConnection) -> ServerState:
    return request.app.state.server


def has_api_key(request: HTTPConnection) -> bool:
    """Whether the request carries the server's key (``Authorization: Bearer <key>`` or
    ``X-API-Key``; a WebSocket also as the subprotocol ``openai-insecure-api-key.<key>``),
    compared in constant time; True when the server has no key."""
    expected = server_state(request).config.api_key
    if expected is None:
        return True
    given = request.headers.get("x-api-key", "")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        given = token.strip()
    for protocol in request.scope.get("subprotocols", ()):
        if protocol.startswith(KEY_SUBPROTOCOL):
            given = protocol[len(KEY_SUBPROTOCOL) :]
    return hmac.compare_digest(given.encode(), expected.encode())


def require_api_key(request: Request) -> None:
    """With ``--api_key`` set, demand it (401 otherwise)."""
    if not has_api_key(request):
        raise ApiError(
            401,
            "missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
