"""Build the FastAPI app around a loaded transcriber."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from whisper_tune import __version__
from whisper_tune.inference.types import Transcriber
from whisper_tune.server import openai_api, realtime, seed_api
from whisper_tune.server.config import ServerConfig
from whisper_tune.server.errors import install_error_handlers
from whisper_tune.server.guard import RequestGuard
from whisper_tune.server.headers import SecurityHeaders, page_policy
from whisper_tune.server.hosts import HostGuard
from whisper_tune.server.state import ServerState, has_api_key
from whisper_tune.server.workers import WorkerPool

STATIC_DIR = Path(__file__).parent / "static"
WORKLET = "live-worklet.js"  # the page's Live mode: microphone to PCM16 (an AudioWorklet)
# a Host header safe to write into the page's policy (HostGuard has checked it is trusted)
_PLAIN_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d+)?")


def model_name(model_path: str) -> str:
    """The id ``/v1/models`` reports: a bundled name as is, a directory by its last part."""
    path = Path(model_path)
    return path.name if path.is_dir() else model_path


def create_app(config: ServerConfig, transcriber: Transcriber) -> FastAPI:
    """The whole HTTP surface; workers start and stop with the app's lifespan."""
    pool = WorkerPool(
        transcriber,
        config.num_workers,
        config.queue_size,
        max_audio_seconds=config.max_audio_seconds,
        job_timeout=config.job_timeout,
    )
    live = realtime.RealtimeLimits(config.realtime_sessions, config.num_workers)
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    worklet = (STATIC_DIR / WORKLET).read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.start()
        live.start()
        try:
            yield
        finally:
            live.stop()
            pool.stop()

    app = FastAPI(
        title="whisper-tune server",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # the forms are parsed by hand, so a generated schema would be empty
        redoc_url=None,
        openapi_url=None,
    )
    app.state.server = ServerState(config, pool, model_name(config.model_path))
    app.state.realtime = live
    app.add_middleware(
        RequestGuard, max_bytes=config.max_upload_bytes, read_timeout=config.request_timeout
    )
    app.add_middleware(HostGuard, trusted=config.trusted_hosts)  # runs before RequestGuard
    app.add_middleware(SecurityHeaders)
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
        """Liveness for anyone; the model, engine and load only with the key (when set)."""
        if not has_api_key(request):
            return {"status": "ok"}
        state: ServerState = app.state.server
        return {
            "status": "ok",
            "model": state.model_name,
            "engine": transcriber.engine,
            "auth": config.api_key is not None,
            **pool.stats(),
            **live.stats(),
        }

    return app
