"""A fixed pool of model worker threads behind a bounded queue.

Request handlers never run the model: they submit a :class:`Job` and await its events.
A worker decodes the uploaded bytes in memory, runs the transcriber and reports the
transcription info, then each segment as soon as it is decoded, into the job's asyncio
queue. At most ``num_workers + queue_size`` jobs are admitted at once; beyond that
:meth:`WorkerPool.submit` raises :class:`QueueFull` with a retry estimate.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from whisper_tune.audio import load_audio
from whisper_tune.errors import WhisperTuneError
from whisper_tune.inference.types import TranscribeOptions, Transcriber

log = logging.getLogger("whisper_tune.server")


class QueueFull(Exception):
    """Every worker is busy and the queue is full."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"server busy, retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass
class Job:
    """One transcription request; its worker reports ``(kind, value)`` events.

    Kinds: ``info`` (TranscriptionInfo), ``segment`` (Segment), ``done``, ``error``
    (WhisperTuneError caused by the input) and ``crash`` (an unexpected exception).
    """

    audio: bytes
    options: TranscribeOptions
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def report(self, kind: str, value: Any = None) -> None:
        """Called from a worker thread: hand one event to the request's event loop."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))
        except RuntimeError:  # the loop is gone (server shutting down)
            self.cancelled.set()


class WorkerPool:
    """``num_workers`` threads sharing one transcriber, admission bounded by ``queue_size``."""

    def __init__(self, transcriber: Transcriber, num_workers: int, queue_size: int) -> None:
        self.transcriber = transcriber
        self.num_workers = num_workers
        self.capacity = num_workers + queue_size
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._admitted = 0
        self._busy = 0
        self._mean_seconds = 1.0
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.num_workers):
            thread = threading.Thread(target=self._work, name=f"whisper-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Finish the jobs already queued (uvicorn drains requests first), then join the threads."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()

    def submit(self, audio: bytes, options: TranscribeOptions) -> Job:
        """Queue a job or raise :class:`QueueFull`; must be called from the event loop."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise QueueFull(self._retry_after())
            self._admitted += 1
        job = Job(audio, options, asyncio.get_running_loop())
        self._jobs.put(job)
        return job

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "workers": self.num_workers,
                "busy": self._busy,
                "queued": self._admitted - self._busy,
                "capacity": self.capacity,
            }

    def _retry_after(self) -> int:
        waves = self._admitted / max(self.num_workers, 1)
        return max(1, math.ceil(self._mean_seconds * waves))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            with self._lock:
                self._busy += 1
            started = time.monotonic()
            try:
                if not job.cancelled.is_set():
                    self._run(job)
            finally:
                elapsed = time.monotonic() - started
                with self._lock:
                    self._busy -= 1
                    self._admitted -= 1
                    self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * elapsed

    def _run(self, job: Job) -> None:
        segments = None
        try:
            audio = load_audio(job.audio)
            segments, info = self.transcriber.transcribe(audio, job.options)
            job.report("info", info)
            for segment in segments:
                if job.cancelled.is_set():
                    return
                job.report("segment", segment)
            job.report("done")
        except WhisperTuneError as exc:
            job.report("error", exc)
        except Exception as exc:
            log.exception("transcription failed")
            job.report("crash", exc)
        finally:
            close = getattr(segments, "close", None)
            if close is not None:
                close()
