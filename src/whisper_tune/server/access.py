"""ASGI middleware: a request id, one access-log line and the metrics of every HTTP request.

The id is the client's ``X-Request-ID`` when it is a plain token (letters, digits, ``-_.:``,
at most 128), else a new one; the response echoes it. The log line (logger
``whisper_tune.access``) is ``key=value`` pairs: id, method, path, status, seconds, client
and the model the request used, written when the response ends (a streamed one included).
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from whisper_tune.server.metrics import Metrics

log = logging.getLogger("whisper_tune.access")
REQUEST_ID = "x-request-id"
_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
UNMATCHED = "unmatched"  # the route label of a path no route serves (bounded cardinality)


def request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID.encode():
            given = value.decode("latin-1")
            if _TOKEN.fullmatch(given):
                return given
    return uuid.uuid4().hex


class AccessLog:
    """Tag each HTTP request with an id, then log and count it once it is answered."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        status = 500  # what the client gets if the app fails before answering

        async def send_tagged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_tagged)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", UNMATCHED)
            self.metrics.request(template, scope["method"], status, seconds)
            client = scope.get("client") or ("-", 0)
            model = scope["state"].get("model", "-")
            log.info(
                "request_id=%s method=%s path=%s status=%d seconds=%.3f client=%s model=%s",
                rid,
                scope["method"],
                scope["path"],
                status,
                seconds,
                client[0],
                model,
            )
