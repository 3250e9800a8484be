"""Build the FastAPI app around the models it serves."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from whisper_tune import __version__
from whisper_tune.inference.types import Transcriber
from whisper_tune.server import openai_api, realtime, seed_api
from whisper_tune.server.access import AccessLog
from whisper_tune.server.config import ServerConfig
from whisper_tune.server.errors import install_error_handlers
from whisper_tune.server.guard import RequestGuard
from whisper_tune.server.headers import SecurityHeaders, page_policy
from whisper_tune.server.hosts import HostGuard
from whisper_tune.server.metrics import Metrics
from whisper_tune.server.models import ModelRegistry, models_in, named_models
from whisper_tune.server.state import ServerState, has_api_key, require_api_key
from whisper_tune.server.workers import WorkerPool

STATIC_DIR = Path(__file__).parent / "static"
WORKLET = "live-worklet.js"  # the page's Live mode: microphone to PCM16 (an AudioWorklet)
# a Host header safe to write into the page's policy (HostGuard has checked it is trusted)
_PLAIN_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d+)?")


# the docs page loads Swagger UI from its CDN: its own policy allows that and nothing else
# (its inline script and styles hold only this server's schema)
DOCS_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src https://fastapi.tiangolo.com data:; connect-src 'self'; frame-ancestors 'none'"
)


def model_registry(config: ServerConfig, transcriber: Transcriber | None = None) -> ModelRegistry:
    """``config``'s models (``--model_path`` values, then ``--models_dir``'s); a
    ``transcriber`` given is the first model, already loaded."""
    paths = list(config.model_paths)
    if config.models_dir:
        paths += models_in(config.models_dir)
    models = named_models(config.engine, paths)
    loaded = {next(iter(models)): transcriber} if transcriber is not None else None
    return ModelRegistry(
        models, ttl=config.model_ttl, max_loaded=config.max_loaded_models, loaded=loaded
    )


def create_app(
    config: ServerConfig,
    transcriber: Transcriber | None = None,
    *,
    models: ModelRegistry | None = None,
) -> FastAPI:
    """The whole HTTP surface over ``models`` (default: :func:`model_registry`'s); workers
    and the idle-model sweeper start and stop with the app's lifespan."""
    metrics = Metrics()
    models = models or model_registry(config, transcriber)
    models.on_change = metrics.model_event
    pool = WorkerPool(
        models,
        config.num_workers,
        config.queue_size,
        max_audio_seconds=config.max_audio_seconds,
        job_timeout=config.job_timeout,
        on_audio=lambda model, seconds: metrics.audio_seconds.labels(model).inc(seconds),
    )
    metrics.gauge("queue_depth", "Requests admitted and waiting for a worker", pool.queued)
    metrics.gauge("busy_workers", "Workers transcribing now", pool.busy)
    metrics.gauge("models_loaded", "Models loaded now", lambda: len(models.loaded()))
    live = realtime.RealtimeLimits(config.realtime_sessions, config.num_workers)
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    worklet = (STATIC_DIR / WORKLET).read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        models.start()
        pool.start()
        live.start()
        try:
            yield
        finally:
            live.stop()
            pool.stop()
            models.stop()

    app = FastAPI(
        title="whisper-tune server",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # served below with its own page policy
        redoc_url=None,
        openapi_url="/openapi.json" if config.docs else None,
    )
    app.state.server = ServerState(config, pool, models, metrics)
    app.state.realtime = live
    app.add_middleware(
        RequestGuard, max_bytes=config.max_upload_bytes, read_timeout=config.request_timeout
    )
    app.add_middleware(HostGuard, trusted=config.trusted_hosts)  # runs before RequestGuard
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLog, metrics=metrics)  # outermost: sees every refusal too
    install_error_handlers(app)
    app.include_router(seed_api.router)
    app.include_router(openai_api.router)
    app.include_router(realtime.router)

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> HTMLResponse:
        """The page; its policy allows the worklet at this host only (a module cannot be
        allowed by hash)."""
        host = request.headers.get("host", "")
        source = f"{request.url.scheme}://{host}/{WORKLET}" if _PLAIN_HOST.fullmatch(host) else None
        return HTMLResponse(page, headers={"Content-Security-Policy": page_policy(page, source)})

    @app.get(f"/{WORKLET}", include_in_schema=False)
    async def live_worklet() -> Response:
        return Response(worklet, media_type="text/javascript")

    @app.get("/health")
    async def health(request: Request) -> dict:
        """Liveness for anyone; the models and load only with the key (when set)."""
        if not has_api_key(request):
            return {"status": "ok"}
        return {
            "status": "ok",
            "model": models.default,
            "models": models.names,
            "loaded": models.loaded(),
            "auth": config.api_key is not None,
            **pool.stats(),
            **live.stats(),
        }

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """200 once the workers run (a model can be served), 503 before and after."""
        if not pool.running:
            return JSONResponse({"status": "not ready"}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        """Prometheus metrics (behind the API key when one is set)."""
        require_api_key(request)
        return Response(metrics.render(), media_type=metrics.content_type)

    if config.docs:

        @app.get("/docs", include_in_schema=False)
        async def docs() -> HTMLResponse:
            page = get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)
            page.headers["Content-Security-Policy"] = DOCS_POLICY
            return page

    return app
