"""``whisper-tune serve``: the HTTP server (seed API, OpenAI-compatible API, web page)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING

from whisper_tune.cli._args import (
    add_config_options,
    add_model_options,
    config_from_args,
    engine_settings,
)
from whisper_tune.engine_settings import SERVER_DEFAULTS

if TYPE_CHECKING:
    from whisper_tune.server import ServerConfig

COMMAND = "serve"
HELP = "serve models over HTTP: the seed's /recognition API, an OpenAI-compatible API, a page"
DESCRIPTION = (
    "Serve one or more Whisper models over HTTP. Endpoints: POST /recognition and "
    "/recognition_stream (the seed's API), POST /v1/audio/transcriptions and "
    "/v1/audio/translations, GET /v1/models (OpenAI-compatible), the WebSocket /v1/realtime "
    "(live transcription, the OpenAI Realtime API's transcription events), GET /health, "
    "/ready and /metrics (Prometheus), the API docs at /docs, and a web page at /. A request "
    "picks a model by its 'model' field (default: the first). Binds to loopback unless "
    "--host says otherwise."
)


def register(parser: argparse.ArgumentParser) -> None:
    from whisper_tune.server.config import ServerConfig

    add_model_options(
        parser,
        SERVER_DEFAULTS,
        "model worker threads (requests transcribed at the same time)",
        model_path_help="one or more models, each a CTranslate2 dir, Hugging Face Whisper dir, "
        "whisper.cpp GGML file or bundled name (tiny.en, base); the first is the default "
        "model; a request names one by its folder or file name",
    )
    add_config_options(parser, ServerConfig)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.server import serve

    serve(server_config(args))
    return 0


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The :class:`ServerConfig` the flags describe (the API key may come from the env)."""
    from whisper_tune.server import ServerConfig
    from whisper_tune.server.config import api_key_from_env, split_hosts

    config = config_from_args(
        ServerConfig,
        args,
        engine=engine_settings(args),
        more_models=tuple(args.model_path[1:]),
        beam_size=args.beam_size,
        vad_filter=args.vad_filter,
    )
    return dataclasses.replace(
        config,
        api_key=api_key_from_env(config.api_key),
        allowed_hosts=split_hosts(config.allowed_hosts),
    )
