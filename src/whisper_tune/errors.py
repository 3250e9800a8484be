"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class WhisperTuneError(Exception):
    """An error caused by the user's input (file, flag, model dir), not by a bug."""


class AudioError(WhisperTuneError):
    """An audio file is missing, unreadable or cannot be decoded."""


class ManifestError(WhisperTuneError):
    """A manifest line is malformed; the message names ``file:line``."""


class ModelError(WhisperTuneError):
    """A model reference does not resolve to a usable model directory."""
