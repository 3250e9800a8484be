"""``whisper-tune serve``: the HTTP server (seed API, OpenAI-compatible API, web page)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from whisper_tune.cli._args import add, add_model_options, engine_settings
from whisper_tune.engine_settings import SERVER_DEFAULTS

if TYPE_CHECKING:
    from whisper_tune.server import ServerConfig

COMMAND = "serve"
HELP = "serve a model over HTTP: the seed's /recognition API, an OpenAI-compatible API, a page"
DESCRIPTION = (
    "Serve a Whisper model over HTTP. Endpoints: POST /recognition and /recognition_stream "
    "(the seed's API), POST /v1/audio/transcriptions and /v1/audio/translations, GET "
    "/v1/models (OpenAI-compatible), the WebSocket /v1/realtime (live transcription, the "
    "OpenAI Realtime API's transcription events), GET /health, and a web page at /. Binds to "
    "loopback unless --host says otherwise."
)


def register(parser: argparse.ArgumentParser) -> None:
    add(
        parser,
        "--host",
        default="127.0.0.1",
        help="address to listen on (0.0.0.0 exposes the server to the network)",
    )
    add(parser, "--port", type=int, default=5000, help="port to listen on")
    add_model_options(
        parser, SERVER_DEFAULTS, "model worker threads (requests transcribed at the same time)"
    )
    add(
        parser,
        "--api_key",
        default=None,
        help="require this key (Authorization: Bearer or X-API-Key); prefer the env "
        "WHISPER_TUNE_API_KEY (a flag shows in ps); default: that env, else no key",
    )
    add(
        parser,
        "--allowed_hosts",
        default="",
        help="comma-separated host names clients may use besides the bind address and "
        "loopback (Host header; cross-site Origins are refused); '*' allows any",
    )
    add(
        parser,
        "--max_upload_mb",
        type=float,
        default=25.0,
        help="largest request body accepted, in MiB (413 above)",
    )
    add(
        parser,
        "--queue_size",
        type=int,
        default=8,
        help="requests that may wait for a worker (503 with Retry-After beyond)",
    )
    add(
        parser,
        "--request_timeout",
        type=float,
        default=300.0,
        help="seconds for a whole upload to arrive (408 after), and that a request may wait "
        "for its next result (504 after)",
    )
    add(
        parser,
        "--max_audio_seconds",
        type=float,
        default=7200.0,
        help="longest audio an upload may decode to, in seconds (413 above)",
    )
    add(
        parser,
        "--job_timeout",
        type=float,
        default=1800.0,
        help="seconds a transcription job may take, queued and decoding (stopped, 504 after)",
    )
    add(
        parser,
        "--header_timeout",
        type=float,
        default=10.0,
        help="seconds a connection has to send each request's headers (closed after)",
    )
    add(
        parser,
        "--max_connections",
        type=int,
        default=64,
        help="open connections and requests at once (503 beyond)",
    )
    add(
        parser,
        "--realtime_sessions",
        type=int,
        default=4,
        help="live transcription sessions (/v1/realtime WebSockets) at once (refused beyond)",
    )
    add(
        parser,
        "--realtime_idle_timeout",
        type=float,
        default=60.0,
        help="seconds a live session may send no event before it is closed",
    )
    add(
        parser,
        "--realtime_max_event_mb",
        type=float,
        default=1.0,
        help="largest live-session event in MiB (an error event above, the connection closed "
        "above twice that)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.server import serve

    serve(server_config(args))
    return 0


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The :class:`ServerConfig` the flags describe (the API key may come from the env)."""
    from whisper_tune.server import ServerConfig
    from whisper_tune.server.config import api_key_from_env

    return ServerConfig(
        engine=engine_settings(args),
        host=args.host,
        port=args.port,
        beam_size=args.beam_size,
        vad_filter=args.vad_filter,
        api_key=api_key_from_env(args.api_key),
        max_upload_mb=args.max_upload_mb,
        queue_size=args.queue_size,
        request_timeout=args.request_timeout,
        max_audio_seconds=args.max_audio_seconds,
        job_timeout=args.job_timeout,
        header_timeout=args.header_timeout,
        max_connections=args.max_connections,
        realtime_sessions=args.realtime_sessions,
        realtime_idle_timeout=args.realtime_idle_timeout,
        realtime_max_event_mb=args.realtime_max_event_mb,
        allowed_hosts=tuple(h.strip() for h in args.allowed_hosts.split(",") if h.strip()),
    )
