"""Read a CTranslate2 ``model.bin`` (binary format version 6) with numpy alone.

Layout (little-endian): ``u32 version``, string ``spec name``, ``u32 revision``,
``u32 n_variables``, then per variable: string ``name``, ``u8 rank``, ``rank × u32 dims``,
``u8 dtype``, ``u32 nbytes`` and the raw data; then ``u32 n_aliases`` and pairs of strings
(alias, target). A string is a ``u16`` length (including the trailing NUL) and its bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisper_tune.errors import ModelError

SUPPORTED_VERSION = 6
# dtype code → numpy dtype; bfloat16 (5) is read as raw uint16 and widened to float32.
_DTYPES = {0: "<f4", 1: "i1", 2: "<i2", 3: "<i4", 4: "<f2", 5: "<u2"}
_DTYPE_NAMES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}


@dataclass(frozen=True)
class Ct2Variable:
    """One stored array: its dtype name as CTranslate2 calls it and a read-only numpy view."""

    dtype: str
    array: np.ndarray


@dataclass(frozen=True)
class Ct2ModelBin:
    """The parsed content of a ``model.bin``."""

    path: Path
    version: int
    spec: str
    revision: int
    variables: dict[str, Ct2Variable]
    aliases: dict[str, str]

    def variable(self, name: str) -> Ct2Variable:
        """The variable stored under ``name``, aliases resolved."""
        variable = self.variables.get(self.aliases.get(name, name))
        if variable is None:
            raise ModelError(f"{self.path}: tensor {name!r} is missing")
        return variable

    def array(self, name: str) -> np.ndarray:
        """The array stored under ``name`` in its stored dtype (bfloat16 widened to float32)."""
        variable = self.variable(name)
        if variable.dtype == "bfloat16":
            return (variable.array.astype(np.uint32) << 16).view(np.float32)
        return variable.array


class _Reader:
    """Sequential reader over a memory-mapped file that names the byte offset on errors."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data = np.memmap(path, dtype=np.uint8, mode="r")
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read {path}: {exc}") from None
        self.pos = 0

    def _take(self, size: int) -> int:
        start = self.pos
        if start + size > self.data.size:
            raise ModelError(
                f"{self.path} is truncated or corrupt: needs {size} bytes at offset {start}, "
                f"the file has {self.data.size}"
            )
        self.pos += size
        return start

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize("<" + fmt)
        return struct.unpack_from("<" + fmt, self.data, self._take(size))[0]

    def string(self) -> str:
        length = self.unpack("H")
        start = self._take(length)
        raw = bytes(self.data[start : start + length])
        if not raw.endswith(b"\0"):
            raise ModelError(f"{self.path} is corrupt: malformed string at offset {start}")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise ModelError(
                f"{self.path} is corrupt: undecodable string at offset {start}"
            ) from None

    def array(self, code: int, dims: list[int], nbytes: int) -> np.ndarray:
        dtype = np.dtype(_DTYPES[code])
        count = int(np.prod(dims, dtype=np.int64)) if dims else 1
        if count * dtype.itemsize != nbytes:
            raise ModelError(
                f"{self.path} is corrupt: {nbytes} bytes at offset {self.pos} do not hold "
                f"{dims} × {_DTYPE_NAMES[code]}"
            )
        start = self._take(nbytes)
        return np.frombuffer(self.data, dtype=dtype, count=count, offset=start).reshape(dims)


def read_header(path: str | Path) -> tuple[int, str, int]:
    """``(version, spec name, revision)`` of a ``model.bin``; refuses other format versions."""
    reader = _Reader(Path(path))
    return _header(reader)


def _header(reader: _Reader) -> tuple[int, str, int]:
    version = reader.unpack("I")
    if version != SUPPORTED_VERSION:
        raise ModelError(
            f"{reader.path}: CTranslate2 model format version {version} is not supported "
            f"(expected {SUPPORTED_VERSION}, written by CTranslate2 3.x and 4.x); re-convert the "
            "model with a current ctranslate2"
        )
    return version, reader.string(), reader.unpack("I")


def read_model_bin(path: str | Path) -> Ct2ModelBin:
    """Parse every variable and alias of a ``model.bin`` (arrays are views on a memory map)."""
    reader = _Reader(Path(path))
    version, spec, revision = _header(reader)
    variables: dict[str, Ct2Variable] = {}
    for _ in range(reader.unpack("I")):
        name = reader.string()
        dims = [reader.unpack("I") for _ in range(reader.unpack("B"))]
        code = reader.unpack("B")
        if code not in _DTYPES:
            raise ModelError(f"{reader.path} is corrupt: unknown dtype code {code} for {name!r}")
        nbytes = reader.unpack("I")
        variables[name] = Ct2Variable(_DTYPE_NAMES[code], reader.array(code, dims, nbytes))
    aliases = {}
    for _ in range(reader.unpack("I")):
        alias = reader.string()
        aliases[alias] = reader.string()
    if reader.pos != reader.data.size:
        raise ModelError(
            f"{reader.path} is corrupt: {reader.data.size - reader.pos} unexpected bytes after "
            f"the last entry"
        )
    return Ct2ModelBin(Path(path), version, spec, revision, variables, aliases)
