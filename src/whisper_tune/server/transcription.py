"""The request side of a job: reserve a slot, submit, await the info, iterate the segments.

A slot is reserved before the upload is read (503 at once when the server is full). Every
wait is bounded by the request timeout (the longest a request may wait for its next result:
a queue slot, decoding, or the next segment) and the whole job by the pool's job timeout.
The job is cancelled when the request times out, fails, finishes or the client goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.requests import Request

from whisper_tune.audio import AudioTooLong
from whisper_tune.errors import AudioError
from whisper_tune.inference.types import Segment, TranscribeOptions, TranscriptionInfo
from whisper_tune.server.errors import ApiError
from whisper_tune.server.workers import Job, QueueFull, Reservation, WorkerPool


class Transcription:
    """A started job whose :attr:`info` is known; segments follow as they are decoded."""

    def __init__(
        self, job: Job, info: TranscriptionInfo, timeout: float, watcher: asyncio.Task
    ) -> None:
        self.job = job
        self.info = info
        self.timeout = timeout
        self.watcher = watcher  # cancels the job if the client disconnects

    async def segments(self) -> AsyncIterator[Segment]:
        """Yield segments until the worker is done; cancels the job if the caller stops."""
        try:
            while True:
                kind, value = await _next_event(self.job, self.timeout)
                if kind == "done":
                    return
                yield value
        finally:
            self.watcher.cancel()
            self.job.finish()

    async def collect(self) -> list[Segment]:
        return [segment async for segment in self.segments()]


@asynccontextmanager
async def reserved(pool: WorkerPool) -> AsyncIterator[Reservation]:
    """Hold a worker slot while the request is read; 503 with Retry-After when none is free."""
    try:
        reservation = pool.reserve()
    except QueueFull as exc:
        raise ApiError(
            503,
            f"all {pool.num_workers} workers are busy and the queue is full; retry later",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    try:
        yield reservation
    finally:
        reservation.release()


async def start(
    request: Request,
    reservation: Reservation,
    audio: bytes,
    options: TranscribeOptions,
    timeout: float,
    model: str,
) -> Transcription:
    """Submit ``audio`` for ``model`` in ``reservation``; return once it is decoded and its
    language known.

    Raises :class:`ApiError`: 400 for audio that cannot be decoded or transcribed, 413 for
    audio longer than the server's limit, 503 when the model cannot be loaded, 504 when no
    result comes within ``timeout`` seconds or the job runs past the job timeout.
    """
    request.state.model = model  # for the access log
    job = reservation.submit(audio, options, model)
    watcher = asyncio.create_task(_cancel_on_disconnect(request, job))
    try:
        _, info = await _next_event(job, timeout)  # the worker reports "info" first
    except BaseException:
        watcher.cancel()
        job.finish()
        raise
    return Transcription(job, info, timeout, watcher)


async def _cancel_on_disconnect(request: Request, job: Job) -> None:
    """Once the body is read, the next message is the client's disconnect (or the end of
    the response): either way the job has nobody left to report to."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    job.cancelled.set()


async def _next_event(job: Job, timeout: float) -> tuple[str, Any]:
    try:
        kind, value = await asyncio.wait_for(job.events.get(), timeout)
    except TimeoutError:
        job.cancelled.set()
        raise ApiError(
            504, f"no transcription result within the server's request timeout ({timeout:g} s)"
        ) from None
    if kind == "error":
        if isinstance(value, AudioTooLong):
            raise ApiError(413, str(value))
        prefix = "" if isinstance(value, AudioError) else "cannot transcribe: "
        raise ApiError(400, f"{prefix}{value}")
    if kind == "unavailable":
        raise ApiError(503, f"model {job.model!r} cannot be loaded now (logged); retry later")
    if kind == "timeout":
        raise ApiError(504, f"the job ran past the server's job timeout ({value:g} s)")
    if kind == "crash":
        raise value
    return kind, value
