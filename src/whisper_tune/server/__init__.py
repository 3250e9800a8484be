"""HTTP server: the seed's ``/recognition`` API, an OpenAI-compatible API and a web page."""

from whisper_tune.server.app import create_app
from whisper_tune.server.config import ServerConfig
from whisper_tune.server.run import serve

__all__ = ["ServerConfig", "create_app", "serve"]
