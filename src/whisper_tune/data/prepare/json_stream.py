"""Stream the items of one top-level array out of a JSON file far larger than memory.

WenetSpeech.json holds every audio of a 10k-hour corpus in one object; only one item of its
``audios`` array is decoded at a time here.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from whisper_tune.errors import WhisperTuneError

_CHUNK = 1 << 20
_MAX_VALUE = 256 << 20  # characters one array item may span before we call the file broken
_WHITESPACE = " \t\r\n"


class _Reader:
    """A text buffer over a binary file that refills on demand and counts bytes consumed."""

    def __init__(self, handle: BinaryIO, name: str):
        self.handle = handle
        self.name = name
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buffer = ""
        self.pos = 0
        self.eof = False
        self.bytes_read = 0

    def fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.handle.read(_CHUNK)
        self.bytes_read += len(chunk)
        self.eof = not chunk
        self.buffer = self.buffer[self.pos :] + self.decoder.decode(chunk, final=self.eof)
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next non-whitespace character ("" at the end of the file)."""
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buffer) or not self.fill():
                return self.buffer[self.pos : self.pos + 1]

    def expect(self, chars: str) -> str:
        char = self.peek()
        if not char or char not in chars:
            self.fail(f"expected one of {chars!r}, found {char or 'end of file'!r}")
        self.pos += 1
        return char

    def value(self) -> object:
        """Decode the next complete JSON value, reading more of the file as needed."""
        self.peek()
        decoder = json.JSONDecoder()
        while True:
            try:
                value, end = decoder.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as exc:
                if len(self.buffer) - self.pos < _MAX_VALUE and self.fill():
                    continue
                self.fail(f"invalid JSON ({exc.msg})")
            if end == len(self.buffer) and self.fill():
                continue  # a number may go on in the next chunk
            self.pos = end
            return value

    def fail(self, problem: str) -> None:
        raise WhisperTuneError(f"{self.name}: near byte {self.bytes_read}: {problem}")


def iter_json_array(path: Path, key: str) -> Iterator[tuple[object, int]]:
    """Yield ``(item, bytes_read_so_far)`` for each item of the top-level array ``key``."""
    if not path.is_file():
        raise WhisperTuneError(f"{path}: file not found")
    found = False
    with path.open("rb") as handle:
        reader = _Reader(handle, str(path))
        reader.expect("{")
        if reader.peek() == "}":
            reader.pos += 1
        else:
            while True:
                name = reader.value()
                reader.expect(":")
                if name == key:
                    found = True
                    reader.expect("[")
                    if reader.peek() == "]":
                        reader.pos += 1
                    else:
                        while True:
                            yield reader.value(), reader.bytes_read
                            if reader.expect(",]") == "]":
                                break
                else:
                    reader.value()
                if reader.expect(",}") == "}":
                    break
    if not found:
        raise WhisperTuneError(f"{path}: no top-level {key!r} array")
