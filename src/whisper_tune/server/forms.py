"""Read a multipart upload and validate its fields; every refusal names the field at fault."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from whisper_tune.errors import WhisperTuneError
from whisper_tune.languages import language_code
from whisper_tune.server.errors import ApiError

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 32
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass
class Upload:
    """The audio bytes of one request and its other form fields (values as sent)."""

    audio: bytes
    fields: dict[str, list[str]]

    def flag(self, name: str, default: bool) -> bool:
        value = self._last(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ApiError(422, f"field '{name}' must be 1 or 0 (true/false), got {value[:40]!r}", name)

    def choice(self, name: str, choices: Sequence[str], default: str) -> str:
        value = self._last(name)
        if value is None:
            return default
        if value not in choices:
            raise ApiError(
                422, f"field '{name}' must be one of {', '.join(choices)}; got {value[:40]!r}", name
            )
        return value

    def choices(self, names: Sequence[str], choices: Sequence[str]) -> list[str]:
        """All values of a repeated field (under any of ``names``), each checked."""
        values = [v for name in names for v in self.fields.get(name, [])]
        for value in values:
            if value not in choices:
                raise ApiError(
                    422,
                    f"field '{names[0]}' values must be among {', '.join(choices)}; "
                    f"got {value[:40]!r}",
                    names[0],
                )
        return values

    def language(self, name: str) -> str | None:
        value = self._last(name)
        try:
            return language_code(value)
        except WhisperTuneError as exc:
            raise ApiError(422, f"field '{name}': {exc}", name) from None

    def number(self, name: str, low: float, high: float) -> float | None:
        value = self._last(name)
        if value is None or not value.strip():
            return None
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not low <= number <= high:  # also refuses nan
            raise ApiError(
                422,
                f"field '{name}' must be a number from {low:g} to {high:g}; got {value[:40]!r}",
                name,
            )
        return number

    def integer(self, name: str, low: int, high: int) -> int | None:
        value = self._last(name)
        if value is None or not value.strip():
            return None
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise ApiError(
                422,
                f"field '{name}' must be a whole number from {low} to {high}; got {value[:40]!r}",
                name,
            )
        return number

    def text(self, name: str, max_chars: int | None = None) -> str | None:
        value = self._last(name)
        if value and max_chars is not None and len(value) > max_chars:
            raise ApiError(
                422, f"field '{name}' is {len(value)} characters long; at most {max_chars}", name
            )
        return value if value else None

    def _last(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None


async def read_upload(request: Request, file_field: str) -> Upload:
    """Parse ``multipart/form-data`` with the audio in ``file_field``.

    The upload is spooled by Starlette to an anonymous temporary file (never a path derived
    from the request) and closed here; the bytes are decoded from memory by the worker.
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(
            415,
            f"send multipart/form-data with the audio file in field '{file_field}' "
            f"(got content type {content_type[:60]!r})",
        )
    try:
        form = await request.form(max_files=1, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES)
    except (ApiError, HTTPException):
        raise
    except ClientDisconnect:
        raise ApiError(400, "the client disconnected during the upload") from None
    except Exception as exc:  # python-multipart refuses what it cannot parse
        raise ApiError(400, f"malformed multipart body ({type(exc).__name__})") from None
    try:
        upload = form.get(file_field)
        if not isinstance(upload, UploadFile):
            raise ApiError(
                422,
                f"field '{file_field}' is required and must be an audio file upload",
                file_field,
            )
        audio = await upload.read()
        fields: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                fields.setdefault(key, []).append(value)
    finally:
        await form.close()
    if not audio:
        raise ApiError(400, f"the uploaded file in field '{file_field}' is empty", file_field)
    return Upload(audio, fields)
