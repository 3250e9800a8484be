"""Decode long recordings as a stream, cutting many slices out in one pass.

A WenetSpeech recording can last hours and carry hundreds of slices; decoding it once per
slice, or holding it whole in memory, does not scale. Here it is decoded once, chunk by
chunk, keeping only the samples a pending slice still needs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from whisper_tune.audio import SAMPLE_RATE, stream_audio
from whisper_tune.errors import AudioError


def stream_decode(path: str | Path) -> Iterator[np.ndarray]:
    """Yield consecutive chunks of mono float32 16 kHz samples of ``path``."""
    return stream_audio(path)


def decoded_seconds(path: str | Path) -> float:
    """Length of ``path`` in seconds, found by decoding every frame (so corruption shows)."""
    return sum(len(chunk) for chunk in stream_decode(path)) / SAMPLE_RATE


def media_seconds(path: str | Path) -> float:
    """Length in seconds from the header when libsndfile reads it, else by streaming decode."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception:  # not a libsndfile format (mp3 on old libsndfile, mp4, opus ...)
        return decoded_seconds(path)
    return info.frames / info.samplerate if info.frames > 0 else decoded_seconds(path)


def iter_spans(
    path: str | Path, spans: Sequence[tuple[float | None, float | None]]
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, samples)`` for each ``(start, end)`` span of ``path`` (seconds).

    Spans come out in order of their start; ``None`` means the file's start or end, and an
    end past the file's end is cut there, as ``whisper_tune.audio.slice_audio`` does. A span
    starting at or after the end raises AudioError.
    """
    bounds = [
        (_sample(start or 0.0), None if end is None else _sample(end)) for start, end in spans
    ]
    pending = deque(sorted(range(len(spans)), key=lambda i: bounds[i][0]))
    chunks: deque[tuple[int, np.ndarray]] = deque()  # (first sample index, samples)
    decoded = 0
    for chunk in stream_decode(path):
        chunks.append((decoded, chunk))
        decoded += len(chunk)
        while pending and bounds[pending[0]][1] is not None and bounds[pending[0]][1] <= decoded:
            index = pending.popleft()
            yield index, _cut(chunks, *bounds[index])
        if not pending:
            return
        keep_from = bounds[pending[0]][0]
        while chunks and chunks[0][0] + len(chunks[0][1]) <= keep_from:
            chunks.popleft()
    for index in pending:
        start, end = bounds[index]
        if start >= decoded:
            raise AudioError(
                f"{path}: slice starts at {start / SAMPLE_RATE:.2f}s, after the end "
                f"({decoded / SAMPLE_RATE:.2f}s)"
            )
        yield index, _cut(chunks, start, decoded if end is None else min(end, decoded))


def _sample(seconds: float) -> int:
    return int(round(seconds * SAMPLE_RATE))


def _cut(chunks: deque[tuple[int, np.ndarray]], start: int, end: int) -> np.ndarray:
    parts = []
    for first, samples in chunks:
        lo, hi = max(start - first, 0), min(end - first, len(samples))
        if lo < hi:
            parts.append(samples[lo:hi])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
