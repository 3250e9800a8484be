"""The request side of a job: submit, await the info, then iterate the segments.

Every wait is bounded by the request timeout (the longest a request may wait for its next
result: a queue slot, decoding, or the next segment); the job is cancelled when the
request times out, fails or the client goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from whisper_tune.errors import AudioError
from whisper_tune.inference.types import Segment, TranscribeOptions, TranscriptionInfo
from whisper_tune.server.errors import ApiError
from whisper_tune.server.workers import Job, QueueFull, WorkerPool


class Transcription:
    """A started job whose :attr:`info` is known; segments follow as they are decoded."""

    def __init__(self, job: Job, info: TranscriptionInfo, timeout: float) -> None:
        self.job = job
        self.info = info
        self.timeout = timeout

    async def segments(self) -> AsyncIterator[Segment]:
        """Yield segments until the worker is done; cancels the job if the caller stops."""
        try:
            while True:
                kind, value = await _next_event(self.job, self.timeout)
                if kind == "done":
                    return
                yield value
        finally:
            self.job.cancelled.set()

    async def collect(self) -> list[Segment]:
        return [segment async for segment in self.segments()]


async def start(
    pool: WorkerPool, audio: bytes, options: TranscribeOptions, timeout: float
) -> Transcription:
    """Submit ``audio``; return once it is decoded and its language known.

    Raises :class:`ApiError`: 503 when the queue is full, 400 for audio that cannot be
    decoded or transcribed, 504 when no result comes within ``timeout`` seconds.
    """
    try:
        job = pool.submit(audio, options)
    except QueueFull as exc:
        raise ApiError(
            503,
            f"all {pool.num_workers} workers are busy and the queue is full; retry later",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    try:
        _, info = await _next_event(job, timeout)  # the worker reports "info" first
    except BaseException:
        job.cancelled.set()
        raise
    return Transcription(job, info, timeout)


async def _next_event(job: Job, timeout: float) -> tuple[str, Any]:
    try:
        kind, value = await asyncio.wait_for(job.events.get(), timeout)
    except asyncio.TimeoutError:
        job.cancelled.set()
        raise ApiError(
            504, f"no transcription result within the server's request timeout ({timeout:g} s)"
        ) from None
    if kind == "error":
        prefix = "" if isinstance(value, AudioError) else "cannot transcribe: "
        raise ApiError(400, f"{prefix}{value}")
    if kind == "crash":
        raise value
    return kind, value
