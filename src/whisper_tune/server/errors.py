"""HTTP errors and their JSON bodies.

Seed endpoints answer ``{"code": <status>, "msg": ...}`` like the seed server did; ``/v1``
endpoints answer OpenAI's ``{"error": {"message", "type", "param", "code"}}`` so the
``openai`` SDK raises its usual exceptions. Anything a client sends maps to a 4xx; only a
genuine bug reaches the catch-all, which logs it and returns a clean 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("whisper_tune.server")


class ApiError(Exception):
    """A request the server refuses; ``field`` names the form field at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


def error_response(request: Request, error: ApiError) -> JSONResponse:
    """Render ``error`` in the shape the request's API family uses."""
    return JSONResponse(error_body(request.url.path, error), error.status, error.headers)


def error_body(path: str, error: ApiError) -> dict:
    if path.startswith("/v1/"):
        kind = "server_error" if error.status >= 500 else "invalid_request_error"
        return {
            "error": {
                "message": error.message,
                "type": kind,
                "param": error.field,
                "code": error.status,
            }
        }
    body: dict = {"code": error.status, "msg": error.message}
    if error.field:
        body["field"] = error.field
    return body


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception through :func:`error_response`."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            request, ApiError(exc.status_code, str(exc.detail), headers=exc.headers)
        )

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(request, ApiError(500, "internal server error (logged)"))
