"""Cut audio into Whisper-sized pieces: 30-second windows, timestamp-token pieces, speech spans."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from whisper_tune.audio import SAMPLE_RATE
from whisper_tune.audio_context import ContextRule, frames_of

WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE
TIME_PRECISION = 0.02  # seconds per timestamp token

_T = TypeVar("_T")


def cancelled(cancel: threading.Event | None) -> bool:
    """Whether the caller asked decoding to stop; engines check it before each window."""
    return cancel is not None and cancel.is_set()


def until_cancelled(items: Iterable[_T], cancel: threading.Event | None) -> Iterator[_T]:
    """``items`` one by one, ending early once ``cancel`` is set (checked before each)."""
    for item in items:
        if cancelled(cancel):
            return
        yield item


CUT_SEARCH_SAMPLES = 5 * SAMPLE_RATE  # look for a pause in the last 5 s of a window
_FRAME = SAMPLE_RATE // 10  # 100 ms loudness frames, 20 ms apart
_HOP = SAMPLE_RATE // 50


def quiet_windows(audio: np.ndarray, length: int = WINDOW_SAMPLES) -> list[tuple[int, int]]:
    """Back-to-back ``(start, end)`` sample ranges of at most ``length`` covering ``audio``,
    each cut at the quietest 100 ms of its last 5 s, so that a cut rarely splits a word."""
    windows: list[tuple[int, int]] = []
    start = 0
    while start < len(audio):
        end = min(start + length, len(audio))
        if end < len(audio):
            end = _quietest(audio, end - CUT_SEARCH_SAMPLES, end)
        windows.append((start, end))
        start = end
    return windows


def _quietest(audio: np.ndarray, lo: int, hi: int) -> int:
    """The sample in [lo, hi] at the centre of the lowest-energy 100 ms frame."""
    region = audio[lo:hi].astype(np.float64) ** 2
    if len(region) < _FRAME:
        return hi
    cumulative = np.concatenate(([0.0], np.cumsum(region)))
    starts = np.arange(0, len(region) - _FRAME + 1, _HOP)
    energy = cumulative[starts + _FRAME] - cumulative[starts]
    return lo + int(starts[int(np.argmin(energy))]) + _FRAME // 2


def speech_spans(audio: np.ndarray, min_silence_ms: int = 160) -> list[tuple[int, int]]:
    """Silero VAD (shipped with faster-whisper) speech regions, merged into spans of at most
    30 seconds; the silence inside a span is kept so times map back with a plain offset."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(
        max_speech_duration_s=WINDOW_SECONDS, min_silence_duration_ms=min_silence_ms
    )
    spans: list[tuple[int, int]] = []
    for region in get_speech_timestamps(audio, options):
        start, end = int(region["start"]), int(region["end"])
        if spans and end - spans[-1][0] <= WINDOW_SAMPLES:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


@dataclass(frozen=True)
class Piece:
    """Tokens between two timestamp tokens; times in seconds from the window start.

    ``end`` is None when the model stopped before closing the piece with a timestamp.
    """

    start: float
    end: float | None
    tokens: tuple[int, ...]


def split_by_timestamps(tokens: list[int], timestamp_begin: int) -> tuple[list[Piece], bool]:
    """Split one window's decoded tokens at timestamp pairs, as openai/whisper does.

    Returns the pieces and whether the window ended on a single timestamp (the model saw
    no more speech in it, so the whole window is done).
    """

    def time(token: int) -> float:
        return (token - timestamp_begin) * TIME_PRECISION

    is_ts = [t >= timestamp_begin for t in tokens]
    single_ending = len(tokens) >= 2 and is_ts[-1] and not is_ts[-2]
    cuts = [i for i in range(1, len(tokens)) if is_ts[i] and is_ts[i - 1]]
    if single_ending:
        cuts.append(len(tokens))
    pieces: list[Piece] = []
    last = 0
    for cut in cuts:
        piece = tokens[last:cut]
        if any(not ts for ts in is_ts[last:cut]):
            pieces.append(Piece(time(piece[0]), time(piece[-1]), tuple(piece)))
        last = cut
    tail = tokens[last:]
    if any(not ts for ts in is_ts[last:]):
        start = time(tail[0]) if is_ts[last] else 0.0
        pieces.append(Piece(start, None, tuple(tail)))
    return pieces, single_ending


def content_frames(features: np.ndarray) -> int:
    """Log-mel frames (last axis) before the zero padding that pads a window to 30 s, over a
    whole batch: the normalised log-mel of real audio, silence included, never has an
    all-zero frame."""
    filled = np.flatnonzero(np.any(features != 0, axis=tuple(range(features.ndim - 1))))
    return int(filled[-1]) + 1 if len(filled) else 0


def group_by_context(lengths: list[int], rule: ContextRule) -> list[list[int]]:
    """Indices of clips (``lengths`` in samples) grouped so that each group's clips need
    encoder contexts at most one rounding step apart (shortest first); one group when the
    rule gives every window 30 s."""

    def positions(index: int) -> int:
        return rule.positions(frames_of(lengths[index]))

    groups: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if groups and positions(index) - positions(groups[-1][0]) <= rule.multiple:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups
