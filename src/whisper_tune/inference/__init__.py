"""One transcription interface (``Transcriber``) over CTranslate2 and transformers engines."""

from whisper_tune.inference.loader import load_transcriber
from whisper_tune.inference.types import (
    Segment,
    TranscribeOptions,
    Transcriber,
    TranscriptionInfo,
    Word,
)

__all__ = [
    "Segment",
    "TranscribeOptions",
    "Transcriber",
    "TranscriptionInfo",
    "Word",
    "load_transcriber",
]
