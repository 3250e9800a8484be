"""Many files, one batch: clips of different files decoded together where the engine can.

A clip of at most one window (30 s) shares one feature pass, one encoder pass and one
``generate`` call with the other short clips of its batch (the CTranslate2 engine's
``transcribe_batch``); a longer clip, and every clip of an engine without batching
(transformers, whisper.cpp), is decoded alone by ``transcribe`` as before. Nothing is
conditioned across files either way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from whisper_tune.inference.chunks import WINDOW_SAMPLES
from whisper_tune.inference.types import Segment, TranscribeOptions, Transcriber, TranscriptionInfo

Decoded = tuple[tuple[Segment, ...], TranscriptionInfo]


def is_short(audio: np.ndarray) -> bool:
    """Whether ``audio`` fits one window, so it can join a batch of clips."""
    return len(audio) <= WINDOW_SAMPLES


def transcribe_short(
    transcriber: Transcriber, audios: Sequence[np.ndarray], options: TranscribeOptions
) -> list[Decoded]:
    """Decode short clips (see :func:`is_short`) together when the engine batches them, else
    one at a time, sequentially (a clip of one window has no windows to batch, and the
    batched long-form path would drop the temperature fallback); one result per clip, in
    order."""
    batched = getattr(transcriber, "transcribe_batch", None)
    if batched is not None and len(audios) > 1:
        return batched(audios, options)
    results = []
    for audio in audios:
        segments, info = transcriber.transcribe(audio, dataclasses.replace(options, batch_size=1))
        results.append((tuple(segments), info))
    return results
