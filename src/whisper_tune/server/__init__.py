"""HTTP server: the seed's ``/recognition`` API, an OpenAI-compatible API and a web page.

Imports are lazy so that ``whisper_tune.server.config`` (the ``serve`` flags) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ServerConfig", "create_app", "serve"]
_HOMES = {"ServerConfig": "config", "create_app": "app", "serve": "run"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
