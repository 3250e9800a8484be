"""``whisper-tune stream``: feed blocks of audio (a file, a microphone) to a
:class:`~whisper_tune.inference.streaming.StreamingTranscriber` and show the text live."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from whisper_tune.audio import SAMPLE_RATE, load_audio
from whisper_tune.inference.streaming import StreamingTranscriber, StreamUpdate, Turn
from whisper_tune.inference.writers import Transcript

BLOCK_SECONDS = 0.1  # what a microphone or a file played in hands over at a time

_CLEAR_LINE = "\r\033[K"
_GREY, _RESET = "\033[90m", "\033[0m"


def file_blocks(
    path: str | Path,
    realtime: bool = False,
    block_seconds: float = BLOCK_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[np.ndarray]:
    """The file's audio (decoded now: a bad file fails here) in blocks; with ``realtime``,
    each block no sooner than it would be heard when playing the file from the first on."""
    audio = load_audio(path)
    step = int(block_seconds * SAMPLE_RATE)

    def blocks() -> Iterator[np.ndarray]:
        started = time.monotonic()
        for index, start in enumerate(range(0, len(audio), step)):
            if realtime:
                sleep(max(0.0, started + index * block_seconds - time.monotonic()))
            yield audio[start : start + step]

    return blocks()


class ConsoleView:
    """Shows updates on ``out``. A terminal gets the current turn on one line that is
    rewritten in place (committed text, then the partial text in grey) and each ended turn
    as ``[start --> end] text``; anything else gets the ended turns only."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._line = ""  # the current turn's committed text

    def __call__(self, update: StreamUpdate) -> None:
        if update.turn is not None:
            self._line = ""
            self._write(f"{_CLEAR_LINE if self.tty else ''}{format_turn(update.turn)}\n")
            return
        if update.committed:
            self._line = f"{self._line} {update.committed_text}".strip()
        if self.tty:
            partial = f" {_GREY}{update.partial_text}{_RESET}" if update.partial else ""
            self._write(f"{_CLEAR_LINE}{self._line}{partial}")

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()


def format_turn(turn: Turn) -> str:
    return f"[{_clock(turn.start)} --> {_clock(turn.end)}] {turn.text}"


def run_live(
    blocks: Iterable[np.ndarray],
    stream: StreamingTranscriber,
    show: Callable[[StreamUpdate], None],
) -> Transcript:
    """Feed ``blocks`` until they end (or Ctrl+C), end the last turn; the turns as segments."""
    turns: list[Turn] = []
    seconds = 0.0

    def handle(update: StreamUpdate) -> None:
        show(update)
        if update.turn is not None:
            turns.append(update.turn)

    try:
        for block in blocks:
            seconds += len(block) / SAMPLE_RATE
            for update in stream.process(block):
                handle(update)
    except KeyboardInterrupt:  # the way to stop a microphone: keep what was said
        pass
    handle(stream.end_turn())
    segments = tuple(turn.segment() for turn in turns)
    return Transcript(segments, stream.language or "en", seconds)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(seconds, 60)
    return f"{int(minutes):02d}:{seconds:04.1f}"
