"""ASGI middleware that bounds what a client may send: body size and body read time.

A declared ``Content-Length`` above the limit is refused before any byte is read; a body
without one (chunked) is counted as it arrives and reading it raises :class:`ApiError` 413
once it passes the limit. The whole body must arrive within the read timeout, counted from
the end of the headers (a client trickling one byte at a time gains nothing): past it, 408.
The app's error handlers render both.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from whisper_tune.server.errors import ApiError, error_body


class RequestGuard:
    """Limit request bodies to ``max_bytes`` and to ``read_timeout`` seconds in all."""

    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await refuse(scope, send, self._too_large())
            return
        received = 0
        body_done = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout

        async def guarded_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # later reads only wait for a disconnect: no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
            except TimeoutError:
                raise ApiError(
                    408, f"the request body did not arrive within {self.read_timeout:g} s"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
                body_done = not message.get("more_body", False)
            return message

        await self.app(scope, guarded_receive, send)

    def _too_large(self) -> ApiError:
        limit_mb = self.max_bytes / (1024 * 1024)
        return ApiError(413, f"request body is larger than the server's limit of {limit_mb:.3g} MB")


async def refuse(scope: Scope, send: Send, error: ApiError) -> None:
    """Answer without reading the body, and close the connection."""
    body = json.dumps(error_body(scope["path"], error)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
