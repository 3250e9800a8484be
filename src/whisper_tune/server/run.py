"""``whisper-tune serve``: check the models, load the default one, then serve with uvicorn."""

from __future__ import annotations

import copy
import logging

from whisper_tune.inference.loader import choose_engine
from whisper_tune.models import resolve_ct2_model
from whisper_tune.server.app import create_app, model_registry
from whisper_tune.server.config import LOOPBACK_HOSTS, ServerConfig
from whisper_tune.server.models import ModelRegistry

log = logging.getLogger("whisper_tune.server")


def serve(config: ServerConfig) -> None:
    """Check every model and load the default one (a ModelError stops here, before binding);
    the others load on their first request."""
    import uvicorn

    models = model_registry(config)
    check_models(models)
    models.load(models.default)
    app = create_app(config, models=models)
    if config.host not in LOOPBACK_HOSTS:
        log.warning(
            "listening on %s: reachable from other machines%s; requests must name %s in "
            "their Host header (--allowed_hosts adds names)",
            config.host,
            "" if config.api_key else " and no API key is set",
            ", ".join(sorted(config.trusted_hosts or ["any host"])),
        )
    log.info("serving %s (default %s)", ", ".join(models.names), models.default)
    uvicorn.Server(uvicorn_config(app, config)).run()


def check_models(models: ModelRegistry) -> None:
    """Raise ModelError for a model that cannot load (a missing or incomplete folder, a
    GGML file that is not one), without loading it."""
    for name in models.names:
        settings = models.settings(name)
        if choose_engine(settings.model_path, settings.engine) == "ct2":
            resolve_ct2_model(settings.model_path, settings.local_files_only)


def uvicorn_config(app, config: ServerConfig):
    """uvicorn's settings for ``app``: the connection cap, the header timeout, and the time
    in-flight requests get to finish on shutdown."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from whisper_tune.server.protocol import header_timeout_protocol

    logging_config = copy.deepcopy(LOGGING_CONFIG)  # whisper_tune's loggers print like uvicorn's
    logging_config["loggers"]["whisper_tune"] = {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level="info",
        log_config=logging_config,
        access_log=False,  # whisper_tune.access logs each request with its id
        http=header_timeout_protocol(config.header_timeout),
        limit_concurrency=config.max_connections,
        timeout_graceful_shutdown=config.shutdown_timeout or None,
        ws_max_size=int(2 * config.realtime_max_event_mb * 1024 * 1024),  # closed above
    )
