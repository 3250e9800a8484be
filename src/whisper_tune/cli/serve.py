"""``whisper-tune serve``: the HTTP server (seed API, OpenAI-compatible API, web page)."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import add, add_model_options

COMMAND = "serve"
HELP = "serve a model over HTTP: the seed's /recognition API, an OpenAI-compatible API, a page"
DESCRIPTION = (
    "Serve a Whisper model over HTTP. Endpoints: POST /recognition and /recognition_stream "
    "(the seed's API), POST /v1/audio/transcriptions and /v1/audio/translations, GET "
    "/v1/models (OpenAI-compatible), GET /health, and a web page at /. Binds to loopback "
    "unless --host says otherwise."
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
        parser,
        num_workers=2,
        num_workers_help="model worker threads (requests transcribed at the same time)",
        local_files_only=True,
    )
    add(
        parser,
        "--api_key",
        default=None,
        help="require this key (Authorization: Bearer or X-API-Key); "
        "default: env WHISPER_TUNE_API_KEY, else no key",
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
        help="seconds a request may wait for its next result or upload chunk (504/408 after)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.server import ServerConfig, serve
    from whisper_tune.server.config import api_key_from_env

    serve(
        ServerConfig(
            model_path=args.model_path,
            host=args.host,
            port=args.port,
            num_workers=args.num_workers,
            use_gpu=args.use_gpu,
            use_int8=args.use_int8,
            beam_size=args.beam_size,
            vad_filter=args.vad_filter,
            local_files_only=args.local_files_only,
            api_key=api_key_from_env(args.api_key),
            max_upload_mb=args.max_upload_mb,
            queue_size=args.queue_size,
            request_timeout=args.request_timeout,
        )
    )
    return 0
