"""A fixed pool of model worker threads behind a bounded queue.

Request handlers never run the model: they reserve a slot, read the upload, submit a
:class:`Job` naming its model and await its events. A worker borrows that model from the
:class:`ModelRegistry` (loading it if needed), decodes the uploaded bytes in memory (refusing
audio longer than ``max_audio_seconds``), runs the transcriber and reports the transcription
info, then each segment as soon as it is decoded, into the job's asyncio queue. At most
``num_workers + queue_size`` slots are handed out at once, counted from before the upload is
read; beyond that :meth:`WorkerPool.reserve` raises :class:`QueueFull` with a retry estimate.
A job is stopped (within one decoding window) when its request cancels it or when it has run
``job_timeout`` seconds since it was submitted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from whisper_tune.audio import load_audio
from whisper_tune.errors import ModelError, WhisperTuneError
from whisper_tune.inference.types import TranscribeOptions
from whisper_tune.server.models import ModelRegistry

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
    (WhisperTuneError caused by the input), ``unavailable`` (the model failed to load),
    ``timeout`` (stopped at the job timeout) and
    ``crash`` (an unexpected exception). Setting :attr:`cancelled` stops the decoding.
    """

    audio: bytes
    options: TranscribeOptions
    loop: asyncio.AbstractEventLoop
    model: str
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    expired: bool = False
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.options = dataclasses.replace(self.options, cancel=self.cancelled)

    def report(self, kind: str, value: Any = None) -> None:
        """Called from a worker thread: hand one event to the request's event loop."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))
        except RuntimeError:  # the loop is gone (server shutting down)
            self.cancelled.set()

    def expire(self) -> None:
        """The job timeout passed: stop decoding and report ``timeout``."""
        self.expired = True
        self.cancelled.set()

    def finish(self) -> None:
        """Called on the event loop once the request is done with the job."""
        self.cancelled.set()
        if self.timer is not None:
            self.timer.cancel()


class Reservation:
    """A slot in the pool held while the upload is read; :meth:`submit` hands it to a job,
    :meth:`release` gives it back unused (a no-op once submitted)."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.used = False

    def submit(self, audio: bytes, options: TranscribeOptions, model: str) -> Job:
        """Queue a job for ``model`` in this slot; must be called from the event loop."""
        self.used = True
        loop = asyncio.get_running_loop()
        job = Job(audio, options, loop, model)
        job.timer = loop.call_later(self.pool.job_timeout, job.expire)
        self.pool._jobs.put(job)
        return job

    def release(self) -> None:
        if not self.used:
            self.used = True
            self.pool._release()


class WorkerPool:
    """``num_workers`` threads sharing the registry's models, admission bounded by
    ``queue_size``; ``on_audio(model, seconds)`` hears of each transcribed upload."""

    def __init__(
        self,
        models: ModelRegistry,
        num_workers: int,
        queue_size: int,
        max_audio_seconds: float | None = None,
        job_timeout: float = math.inf,
        on_audio: Callable[[str, float], None] | None = None,
    ) -> None:
        self.models = models
        self.on_audio = on_audio or (lambda model, seconds: None)
        self.num_workers = num_workers
        self.capacity = num_workers + queue_size
        self.max_audio_seconds = max_audio_seconds
        self.job_timeout = job_timeout
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._admitted = 0
        self._busy = 0
        self._mean_seconds = 1.0
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

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

    def reserve(self) -> Reservation:
        """A slot for one request, or :class:`QueueFull` when every slot is taken."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise QueueFull(self._retry_after())
            self._admitted += 1
        return Reservation(self)

    def queued(self) -> int:
        with self._lock:
            return self._admitted - self._busy

    def busy(self) -> int:
        return self._busy

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "workers": self.num_workers,
                "busy": self._busy,
                "queued": self._admitted - self._busy,
                "capacity": self.capacity,
            }

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    def _retry_after(self) -> int:
        waves = self._admitted / max(self.num_workers, 1)
        return max(1, math.ceil(self._mean_seconds * waves))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            with self._lock:
                self._busy += 1
            started = time.monotonic()
            try:
                self._run(job)
            finally:
                elapsed = time.monotonic() - started
                with self._lock:
                    self._busy -= 1
                    self._admitted -= 1
                    self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * elapsed

    def _run(self, job: Job) -> None:
        try:
            if not job.cancelled.is_set():
                audio = load_audio(job.audio, max_seconds=self.max_audio_seconds)
                job.audio = b""  # the request may live on: do not keep the upload too
                with self.models.use(job.model) as transcriber:
                    segments, info = transcriber.transcribe(audio, job.options)
                    job.report("info", info)
                    for segment in segments:  # ends early once job.cancelled is set
                        job.report("segment", segment)
            if job.expired:
                job.report("timeout", self.job_timeout)
            elif not job.cancelled.is_set():  # transcribed to the end
                self.on_audio(job.model, info.duration)
                job.report("done")
        except ModelError as exc:
            log.error("model %s could not be loaded: %s", job.model, exc)
            job.report("unavailable", exc)
        except WhisperTuneError as exc:
            job.report("error", exc)
        except Exception as exc:
            log.exception("transcription failed")
            job.report("crash", exc)
