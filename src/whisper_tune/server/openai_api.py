"""OpenAI-compatible endpoints: ``/v1/audio/transcriptions``, ``/v1/audio/translations``
and ``/v1/models``, so the official ``openai`` SDK works with ``base_url`` set here."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from whisper_tune.inference.postprocess import join_text
from whisper_tune.inference.types import Segment
from whisper_tune.inference.writers import Transcript, WriteSRT, WriteVerboseJSON, WriteVTT
from whisper_tune.languages import language_name
from whisper_tune.server import transcription
from whisper_tune.server.errors import ApiError, error_body
from whisper_tune.server.form_docs import OPENAI_FORM
from whisper_tune.server.forms import read_upload
from whisper_tune.server.models import UnknownModel
from whisper_tune.server.request_options import decoding_options, requested_model
from whisper_tune.server.state import require_api_key, server_state

router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")


@router.get("/models")
async def models(request: Request) -> dict:
    """Every model this server offers (the default first)."""
    return {"object": "list", "data": [_model(n) for n in server_state(request).models.names]}


@router.get("/models/{name:path}")
async def model(request: Request, name: str) -> dict:
    names = server_state(request).models.names
    if name not in names:
        raise ApiError(404, str(UnknownModel(name, names)), "model")
    return _model(name)


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "whisper-tune"}


@router.post("/audio/transcriptions", openapi_extra=OPENAI_FORM)
async def transcriptions(request: Request) -> Response:
    return await _handle(request, "transcribe")


@router.post("/audio/translations", openapi_extra=OPENAI_FORM)
async def translations(request: Request) -> Response:
    return await _handle(request, "translate")


async def _handle(request: Request, task: str) -> Response:
    """Validate OpenAI's fields (``model`` picks one of the served models) and this server's
    decoding fields."""
    state = server_state(request)
    async with transcription.reserved(state.pool) as slot:
        upload = await read_upload(request, "file")
        model = requested_model(upload, state)
        response_format = upload.choice("response_format", RESPONSE_FORMATS, "json")
        granularities = upload.choices(
            ("timestamp_granularities[]", "timestamp_granularities"), GRANULARITIES
        )
        stream = upload.flag("stream", False)
        options = state.options(
            language=upload.language("language"),
            task=task,
            word_timestamps="word" in granularities,
            to_simple=upload.flag("to_simple", False),
            remove_pun=upload.flag("remove_pun", False),
            **decoding_options(upload, state),
        )
        run = await transcription.start(
            request, slot, upload.audio, options, state.config.request_timeout, model
        )
    if stream:
        return _event_stream(request, run)
    info = run.info
    transcript = Transcript(
        tuple(await run.collect()), info.language, info.duration, info.language_probability
    )
    if response_format == "text":
        return PlainTextResponse(transcript.text + "\n")
    if response_format == "srt":
        return PlainTextResponse(WriteSRT().format(transcript))
    if response_format == "vtt":
        return PlainTextResponse(WriteVTT().format(transcript), media_type="text/vtt")
    if response_format == "verbose_json":
        fixed = options.temperature if isinstance(options.temperature, float) else None
        return JSONResponse(_verbose(transcript, task, "word" in granularities, fixed))
    usage = {"type": "duration", "seconds": math.ceil(info.duration)}
    return JSONResponse({"text": transcript.text, "usage": usage})


def _verbose(
    transcript: Transcript, task: str, with_words: bool, temperature: float | None
) -> dict:
    """OpenAI's verbose_json, built from the verbose writer's document: language by name,
    words in one top-level list, ``seek`` as the segment's start in 10 ms frames and
    ``temperature`` only when the request fixed it (else null: the fallback used is unknown).
    """
    document = json.loads(WriteVerboseJSON().format(transcript))
    segments = document["segments"]
    words = [
        {"word": w["word"], "start": w["start"], "end": w["end"]}
        for segment in segments
        for w in segment.pop("words")
    ]
    for segment in segments:
        segment["seek"] = round(segment["start"] * 100)
        segment["temperature"] = temperature
    body = {
        "task": task,
        "language": language_name(transcript.language),
        "duration": document["duration"],
        "text": document["text"],
        "segments": segments,
    }
    if with_words:
        body["words"] = words
    return body


def _event_stream(request: Request, run: transcription.Transcription) -> StreamingResponse:
    """Server-sent events in OpenAI's shape: ``transcript.text.delta`` per segment (with the
    segment's ``start``/``end`` as extra fields), then ``transcript.text.done``."""

    async def events() -> AsyncIterator[str]:
        segments: list[Segment] = []
        sent = ""
        try:
            async for segment in run.segments():
                segments.append(segment)
                text = join_text(segments, run.info.language)
                delta, sent = text[len(sent) :], text
                yield _sse(
                    {
                        "type": "transcript.text.delta",
                        "delta": delta,
                        "start": segment.start,
                        "end": segment.end,
                    }
                )
            yield _sse({"type": "transcript.text.done", "text": sent})
        except ApiError as exc:  # a failure after the first event: report it in-band
            yield _sse(error_body(request.url.path, exc))

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
