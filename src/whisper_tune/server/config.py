"""Everything the server needs to know, gathered in one dataclass (filled by the CLI)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from whisper_tune.engine_settings import SERVER_DEFAULTS, EngineSettings
from whisper_tune.options import check_ranges

API_KEY_ENV = "WHISPER_TUNE_API_KEY"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
ANY_HOST = "*"


@dataclass(frozen=True)
class ServerConfig:
    """Model, worker and hardening settings of one server process."""

    engine: EngineSettings = SERVER_DEFAULTS  # the model; its num_workers serve requests
    host: str = "127.0.0.1"
    port: int = 5000
    beam_size: int = 5
    vad_filter: bool = False
    api_key: str | None = None
    max_upload_mb: float = 25.0
    queue_size: int = 8
    request_timeout: float = 300.0  # the whole upload, then each wait for a result
    max_audio_seconds: float = 7200.0  # decoded length of one upload (413 above)
    job_timeout: float = 1800.0  # one job, queued and decoding, before it is stopped (504)
    header_timeout: float = 10.0  # a connection's request line and headers
    max_connections: int = 64  # open connections and requests (uvicorn answers 503 beyond)
    allowed_hosts: tuple[str, ...] = ()  # Host names besides the bind address and loopback
    realtime_sessions: int = 4  # open /v1/realtime sessions at once (refused beyond)
    realtime_idle_timeout: float = 60.0  # a session without an event for this long is closed
    realtime_max_event_mb: float = 1.0  # largest realtime event (an error event above)

    def __post_init__(self) -> None:
        checks = {
            "port": 0 <= self.port <= 65535,
            "beam_size": self.beam_size >= 1,
            "max_upload_mb": self.max_upload_mb > 0,
            "queue_size": self.queue_size >= 0,
            "request_timeout": self.request_timeout > 0,
            "max_audio_seconds": self.max_audio_seconds > 0,
            "job_timeout": self.job_timeout > 0,
            "header_timeout": self.header_timeout > 0,
            "max_connections": self.max_connections >= 1,
            "realtime_sessions": self.realtime_sessions >= 0,
            "realtime_idle_timeout": self.realtime_idle_timeout > 0,
            "realtime_max_event_mb": self.realtime_max_event_mb > 0,
        }
        check_ranges(self, **checks)

    @property
    def model_path(self) -> str:
        return self.engine.model_path

    @property
    def num_workers(self) -> int:
        """Requests transcribed at the same time (the model's workers)."""
        return self.engine.num_workers

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def trusted_hosts(self) -> frozenset[str] | None:
        """Host names a request may address (lower case); None when ``*`` allows any."""
        if ANY_HOST in self.allowed_hosts:
            return None
        return frozenset(h.lower() for h in (*LOOPBACK_HOSTS, self.host, *self.allowed_hosts))


def api_key_from_env(explicit: str | None) -> str | None:
    """The ``--api_key`` flag wins; else ``WHISPER_TUNE_API_KEY``; empty means no key."""
    key = explicit if explicit is not None else os.environ.get(API_KEY_ENV)
    return key or None
