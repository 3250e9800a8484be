"""Many files, one batch: clips of different files decoded together where the engine can.

A clip of at most one window (30 s) shares one feature pass, one encoder pass and one
``generate`` call with the other short clips of its batch (the CTranslate2 engine's
``transcribe_batch``); a longer clip, and every clip of an engine without batching
(transformers, whisper.cpp), is decoded alone by ``transcribe`` as before. Nothing is
conditioned across files either way, unless clips are packed
(:mod:`whisper_tune.inference.packing`): then several clips share one window, and one
encoder pass serves them all.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from whisper_tune.audio import SAMPLE_RATE
from whisper_tune.inference.chunks import WINDOW_SAMPLES
from whisper_tune.inference.packing import PACKED_SECONDS, Decoded, plan_packs, unpack
from whisper_tune.inference.types import TranscribeOptions, Transcriber

log = logging.getLogger("whisper_tune.inference")


def is_short(audio: np.ndarray) -> bool:
    """Whether ``audio`` fits one window, so it can join a batch of clips."""
    return len(audio) <= WINDOW_SAMPLES


def group_full(clips: int, seconds: float, batch_size: int, pack: bool) -> bool:
    """Whether clips gathered for :func:`transcribe_short` make a full group: ``batch_size``
    clips, or when packing, enough audio to fill ``batch_size`` windows."""
    if pack:
        return seconds >= max(1, batch_size) * PACKED_SECONDS
    return clips >= max(1, batch_size)


def can_pack(transcriber: Transcriber, options: TranscribeOptions) -> bool:
    """Whether clips can share a window: only clips of one known language (given, or the
    model's only one)."""
    return bool(options.language) or not transcriber.is_multilingual


def transcribe_short(
    transcriber: Transcriber,
    audios: Sequence[np.ndarray],
    options: TranscribeOptions,
    pack: bool = False,
) -> list[Decoded]:
    """Decode short clips (see :func:`is_short`) together when the engine batches them, else
    one at a time, sequentially (a clip of one window has no windows to batch, and the
    batched long-form path would drop the temperature fallback); one result per clip, in
    order. ``pack`` (where :func:`can_pack`) first lays the clips in shared windows."""
    if pack and len(audios) > 1 and can_pack(transcriber, options):
        return _transcribe_packed(transcriber, audios, options)
    batched = getattr(transcriber, "transcribe_batch", None)
    if batched is not None and len(audios) > 1:
        return batched(audios, options)
    results = []
    for audio in audios:
        segments, info = transcriber.transcribe(audio, dataclasses.replace(options, batch_size=1))
        results.append((tuple(segments), info))
    return results


def _transcribe_packed(
    transcriber: Transcriber, audios: Sequence[np.ndarray], options: TranscribeOptions
) -> list[Decoded]:
    """Clips packed into windows decoded with timestamps at the first temperature; a clip the
    window could not hand back cleanly (see :func:`~whisper_tune.inference.packing.unpack`:
    its text fails the thresholds, runs into a neighbour or is missing) and a clip alone in
    its window are decoded unpacked with ``options`` as given."""
    policy = options.policy()
    packs = [
        pack for pack in plan_packs([len(a) / SAMPLE_RATE for a in audios]) if len(pack.clips) > 1
    ]
    window_options = dataclasses.replace(
        options, timestamps=True, temperature=policy.temperature[:1]
    )
    windows = transcribe_short(transcriber, [p.audio(audios) for p in packs], window_options)
    results: dict[int, Decoded | None] = {}
    for pack, decoded in zip(packs, windows, strict=True):
        results.update(
            unpack(pack, decoded, lambda s: policy.fails(s.avg_logprob, s.compression_ratio))
        )
    redo = [i for i in range(len(audios)) if results.get(i) is None]
    log.debug(
        "packed %d clips in %d windows; %d decoded again alone", len(audios), len(packs), len(redo)
    )
    if redo:
        again = transcribe_short(transcriber, [audios[i] for i in redo], options)
        results.update(zip(redo, again, strict=True))
    return [results[i] for i in range(len(audios))]
