"""ASGI middleware against DNS rebinding and cross-site requests.

A request must name a trusted host in its ``Host`` header (the bind address and loopback
names unless ``--allowed_hosts`` widens them; ``*`` trusts any), else 400. A browser's
``Origin`` header, when sent, must be the request's own origin or a trusted host, else 403:
a multipart POST needs no CORS preflight, so without this any page the user visits could
drive the server.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from whisper_tune.server.errors import ApiError
from whisper_tune.server.guard import refuse


class HostGuard:
    """Refuse requests addressed to an untrusted host or sent from a foreign origin."""

    def __init__(self, app: ASGIApp, trusted: frozenset[str] | None) -> None:
        self.app = app
        self.trusted = trusted  # None: any host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        error = self._check(_header(scope, b"host"), _header(scope, b"origin"))
        if error is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": error.message})
        else:
            await refuse(scope, send, error)

    def _check(self, host: str | None, origin: str | None) -> ApiError | None:
        if host is not None and not self._trusted(_hostname(host)):
            return ApiError(400, "invalid Host header: this server does not answer for it")
        if origin is None:
            return None
        parts = urlsplit(origin)
        same_origin = host is not None and parts.netloc.lower() == host.lower()
        if parts.scheme in ("http", "https") and (same_origin or self._named(parts.hostname)):
            return None
        return ApiError(403, "cross-origin request refused (Origin is not this server)")

    def _trusted(self, hostname: str) -> bool:
        return self.trusted is None or hostname in self.trusted

    def _named(self, hostname: str | None) -> bool:
        """An origin on an explicitly trusted host (``*`` trusts no origin by itself)."""
        return hostname is not None and self.trusted is not None and hostname in self.trusted


def _hostname(host: str) -> str:
    """``Host`` without its port, lower case, brackets of an IPv6 address removed."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    name, _, port = host.rpartition(":")
    return name.rstrip(".") if name and port.isdigit() else host.rstrip(".")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
