"""Everything the server needs to know, gathered in one dataclass (filled by the CLI).

Each field with help is also a ``serve`` flag (``whisper_tune.cli._args.add_config_options``);
the model flags come from :class:`EngineSettings` (shared with transcribe and gui).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from whisper_tune.engine_settings import SERVER_DEFAULTS, EngineSettings
from whisper_tune.options import check_ranges, option

API_KEY_ENV = "WHISPER_TUNE_API_KEY"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
ANY_HOST = "*"
MODELS = "models"
LIMITS = "limits"
LIVE = "live transcription (/v1/realtime)"


@dataclass(frozen=True)
class ServerConfig:
    """Model, worker and hardening settings of one server process."""

    # the first model and the settings of every model; its num_workers serve requests
    engine: EngineSettings = SERVER_DEFAULTS
    more_models: tuple[str, ...] = ()  # --model_path's other values
    beam_size: int = 5  # the default of a request that names none (--beam_size)
    vad_filter: bool = False  # likewise (--vad_filter)
    host: str = option(
        "127.0.0.1", help="address to listen on (0.0.0.0 exposes the server to the network)"
    )
    port: int = option(5000, help="port to listen on")
    models_dir: str | None = option(
        None,
        help="serve every model in this folder too: each sub-folder (CTranslate2 or Hugging "
        "Face) and each GGML file, named by its folder or file name",
        group=MODELS,
    )
    model_ttl: float = option(
        0.0,
        help="unload a model no request used for this many seconds (0 = keep it loaded); "
        "it loads again on its next request",
        group=MODELS,
    )
    max_loaded_models: int = option(
        0,
        help="models loaded at once (0 = no cap); loading another unloads the least recently "
        "used idle one",
        group=MODELS,
    )
    max_beam_size: int = option(
        10, help="largest beam_size a request may ask for (422 above)", group=LIMITS
    )
    api_key: str | None = option(
        None,
        help="require this key (Authorization: Bearer or X-API-Key); prefer the env "
        "WHISPER_TUNE_API_KEY (a flag shows in ps); default: that env, else no key",
    )
    allowed_hosts: tuple[str, ...] = option(
        (),
        help="host names clients may use besides the bind address and loopback (Host header; "
        "cross-site Origins are refused; commas also separate); '*' allows any",
    )
    docs: bool = option(True, help="serve the OpenAPI docs at /docs and /openapi.json")
    max_upload_mb: float = option(
        25.0, help="largest request body accepted, in MiB (413 above)", group=LIMITS
    )
    queue_size: int = option(
        8, help="requests that may wait for a worker (503 with Retry-After beyond)", group=LIMITS
    )
    request_timeout: float = option(
        300.0,
        help="seconds for a whole upload to arrive (408 after), and that a request may wait "
        "for its next result (504 after)",
        group=LIMITS,
    )
    max_audio_seconds: float = option(
        7200.0,
        help="longest audio an upload may decode to, in seconds (413 above)",
        group=LIMITS,
    )
    job_timeout: float = option(
        1800.0,
        help="seconds a transcription job may take, queued and decoding (stopped, 504 after)",
        group=LIMITS,
    )
    header_timeout: float = option(
        10.0,
        help="seconds a connection has to send each request's headers (closed after)",
        group=LIMITS,
    )
    max_connections: int = option(
        64, help="open connections and requests at once (503 beyond)", group=LIMITS
    )
    shutdown_timeout: float = option(
        60.0,
        help="on SIGTERM/Ctrl-C: seconds in-flight requests get to finish before they are cut "
        "(0 = as long as they take)",
        group=LIMITS,
    )
    realtime_sessions: int = option(
        4, help="live transcription sessions (WebSockets) at once (refused beyond)", group=LIVE
    )
    realtime_idle_timeout: float = option(
        60.0, help="seconds a live session may send no event before it is closed", group=LIVE
    )
    realtime_max_event_mb: float = option(
        1.0,
        help="largest live-session event in MiB (an error event above, the connection closed "
        "above twice that)",
        group=LIVE,
    )

    def __post_init__(self) -> None:
        checks = {
            "port": 0 <= self.port <= 65535,
            "beam_size": 1 <= self.beam_size <= self.max_beam_size,
            "model_ttl": self.model_ttl >= 0,
            "max_loaded_models": self.max_loaded_models >= 0,
            "max_upload_mb": self.max_upload_mb > 0,
            "queue_size": self.queue_size >= 0,
            "request_timeout": self.request_timeout > 0,
            "max_audio_seconds": self.max_audio_seconds > 0,
            "job_timeout": self.job_timeout > 0,
            "header_timeout": self.header_timeout > 0,
            "max_connections": self.max_connections >= 1,
            "shutdown_timeout": self.shutdown_timeout >= 0,
            "realtime_sessions": self.realtime_sessions >= 0,
            "realtime_idle_timeout": self.realtime_idle_timeout > 0,
            "realtime_max_event_mb": self.realtime_max_event_mb > 0,
        }
        check_ranges(self, **checks)

    @property
    def model_path(self) -> str:
        return self.engine.model_path

    @property
    def model_paths(self) -> tuple[str, ...]:
        """Every ``--model_path`` value (the first is the default model)."""
        return (self.engine.model_path, *self.more_models)

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


def split_hosts(values: tuple[str, ...]) -> tuple[str, ...]:
    """``--allowed_hosts a,b c``: every name, spaces and empties dropped."""
    return tuple(h.strip() for value in values for h in value.split(",") if h.strip())
