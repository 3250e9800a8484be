"""The seed server's endpoints, compatible with its clients: ``/recognition`` and
``/recognition_stream`` (JSON objects each followed by a NUL byte)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from whisper_tune.inference.types import Segment
from whisper_tune.languages import TASKS
from whisper_tune.server import transcription
from whisper_tune.server.errors import ApiError, error_body
from whisper_tune.server.form_docs import SEED_FORM
from whisper_tune.server.forms import read_upload
from whisper_tune.server.request_options import decoding_options, requested_model
from whisper_tune.server.state import require_api_key, server_state

router = APIRouter(dependencies=[Depends(require_api_key)])


async def _start(request: Request) -> transcription.Transcription:
    """Read the seed's form (``audio``, ``to_simple`` 1, ``remove_pun`` 0, ``task``,
    ``language``; absent language = detect), this server's ``model``, decoding fields and
    ``word_timestamps`` flag, and start the job."""
    state = server_state(request)
    async with transcription.reserved(state.pool) as slot:
        upload = await read_upload(request, "audio")
        model = requested_model(upload, state)
        options = state.options(
            language=upload.language("language"),
            task=upload.choice("task", TASKS, "transcribe"),
            to_simple=upload.flag("to_simple", True),
            remove_pun=upload.flag("remove_pun", False),
            word_timestamps=upload.flag("word_timestamps", False),
            **decoding_options(upload, state),
        )
        return await transcription.start(
            request, slot, upload.audio, options, state.config.request_timeout, model
        )


def _times(segment: Segment) -> dict:
    """A segment's times, and its words when word timestamps were asked for."""
    times: dict = {"start": round(segment.start, 2), "end": round(segment.end, 2)}
    if segment.words:
        times["words"] = [
            {"word": w.word, "start": round(w.start, 2), "end": round(w.end, 2)}
            for w in segment.words
        ]
    return times


@router.post("/recognition", openapi_extra=SEED_FORM)
async def recognition(request: Request) -> dict:
    """``{"results": [{"text", "start", "end"}], "code": 0}``."""
    run = await _start(request)
    segments = await run.collect()
    return {"results": [{"text": s.text, **_times(s)} for s in segments], "code": 0}


@router.post("/recognition_stream", openapi_extra=SEED_FORM)
async def recognition_stream(request: Request) -> StreamingResponse:
    """``{"result", "start", "end"}`` + ``\\0`` per segment, sent as each is decoded."""
    run = await _start(request)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for segment in run.segments():
                record = {"result": segment.text, **_times(segment)}
                yield json.dumps(record, ensure_ascii=False).encode() + b"\0"
        except ApiError as exc:  # a failure after the first bytes: report it in-band
            yield json.dumps(error_body(request.url.path, exc)).encode() + b"\0"

    return StreamingResponse(body(), media_type="application/octet-stream")
