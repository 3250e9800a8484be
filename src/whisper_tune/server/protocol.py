"""uvicorn's h11 protocol with a deadline for each request's line and headers.

uvicorn times out idle keep-alive connections but not a client that opens a connection and
sends its headers slowly (or never): such a connection would be held forever. Here each
request gets ``header_timeout`` seconds, from the connection's start or the previous
response, to finish its headers; past that the connection is closed.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def header_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """An :class:`H11Protocol` whose connections close when headers take over ``seconds``."""

    class HeaderTimeoutProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._watch_headers()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch_headers()

        def _watch_headers(self) -> None:
            cycle = self.cycle  # a new request replaces it once its headers are complete
            self.loop.call_later(seconds, self._headers_due, cycle)

        def _headers_due(self, cycle: object) -> None:
            waiting = self.cycle is cycle and self.conn.their_state is h11.IDLE
            if waiting and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol
