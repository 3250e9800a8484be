"""``whisper-tune serve``: load the model once, then serve it with uvicorn."""

from __future__ import annotations

import logging

from whisper_tune.inference import load_transcriber
from whisper_tune.server.app import create_app
from whisper_tune.server.config import LOOPBACK_HOSTS, ServerConfig

log = logging.getLogger("whisper_tune.server")


def serve(config: ServerConfig) -> None:
    """Load ``config.engine`` (a ModelError stops here, before binding) and serve it."""
    import uvicorn

    transcriber = load_transcriber(config.engine)
    app = create_app(config, transcriber)
    if config.host not in LOOPBACK_HOSTS:
        log.warning(
            "listening on %s: reachable from other machines%s; requests must name %s in "
            "their Host header (--allowed_hosts adds names)",
            config.host,
            "" if config.api_key else " and no API key is set",
            ", ".join(sorted(config.trusted_hosts or ["any host"])),
        )
    uvicorn.Server(uvicorn_config(app, config)).run()


def uvicorn_config(app, config: ServerConfig):
    """uvicorn's settings for ``app``: the connection cap and the header timeout."""
    import uvicorn

    from whisper_tune.server.protocol import header_timeout_protocol

    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level="info",
        http=header_timeout_protocol(config.header_timeout),
        limit_concurrency=config.max_connections,
        ws_max_size=int(2 * config.realtime_max_event_mb * 1024 * 1024),  # closed above
    )
