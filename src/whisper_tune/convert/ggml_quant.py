"""whisper.cpp's own quantizer (ggml's ``ggml_quantize_chunk``), from the pywhispercpp wheel.

whisper.cpp's ``quantize`` tool turns every 2-D tensor except the conv biases and positional
embeddings into blocks of 32 values (q8_0: an f16 scale and 32 int8; q5_0: an f16 scale and
32 five-bit values) with ``ggml_quantize_chunk``, and stores ``2 * 1000 + ggml_ftype`` as the
file type. The same ggml library ships inside pywhispercpp, so it is called here through ctypes:
the blocks are exactly the ones whisper.cpp would write.
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path

import numpy as np

from whisper_tune.errors import ModelError, WhisperTuneError

QNT_VERSION, QNT_VERSION_FACTOR = 2, 1000  # GGML_QNT_VERSION, GGML_QNT_VERSION_FACTOR
# name → (ggml_type, ggml_ftype) as numbered in ggml.h
QUANT_TYPES = {"q8_0": (8, 7), "q5_0": (6, 8)}
BLOCK_SIZE = 32
_LIBRARY_PATTERNS = ("libggml-base*.so*", "libggml-base*.dylib", "ggml-base*.dll")


class GgmlQuantizer:
    """Quantize f32 matrices row by row to one of :data:`QUANT_TYPES`."""

    def __init__(self, kind: str) -> None:
        if kind not in QUANT_TYPES:
            raise WhisperTuneError(
                f"--quantize must be one of {', '.join(QUANT_TYPES)}, got {kind!r}"
            )
        self.kind = kind
        self.ggml_type, ggml_ftype = QUANT_TYPES[kind]
        self.file_type = QNT_VERSION * QNT_VERSION_FACTOR + ggml_ftype
        self._lib = _load_ggml()

    def check_row_length(self, n: int) -> None:
        """Every quantized row must be whole blocks of 32 values."""
        if n % BLOCK_SIZE:
            raise ModelError(
                f"{self.kind} needs rows of a multiple of {BLOCK_SIZE} values; "
                f"this model's width is {n}"
            )

    def quantize(self, matrix: np.ndarray) -> bytes:
        """The ggml blocks of a 2-D float matrix (rows are the innermost ggml dimension)."""
        rows, n_per_row = matrix.shape
        self.check_row_length(n_per_row)
        src = np.ascontiguousarray(matrix, dtype=np.float32)
        row_size = self._lib.ggml_row_size(self.ggml_type, n_per_row)
        dst = ctypes.create_string_buffer(rows * row_size)
        written = self._lib.ggml_quantize_chunk(
            self.ggml_type, src.ctypes.data_as(ctypes.c_void_p), dst, 0, rows, n_per_row, None
        )
        if written != rows * row_size:
            raise ModelError(
                f"ggml wrote {written} bytes for {self.kind}, expected {rows * row_size}"
            )
        return dst.raw


def _load_ggml() -> ctypes.CDLL:
    """The ggml base library the installed pywhispercpp runs on."""
    path = _find_library()
    lib = ctypes.CDLL(str(path))
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_void_p,
    ]
    lib.ggml_row_size.restype = ctypes.c_size_t
    lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    return lib


def _find_library() -> Path:
    spec = importlib.util.find_spec("_pywhispercpp")
    if spec is None or spec.origin is None:
        raise WhisperTuneError(
            "quantizing needs whisper.cpp's ggml library from pywhispercpp: "
            "pip install 'whisper-tune[ggml]' (or pip install pywhispercpp)"
        )
    site = Path(spec.origin).parent
    for folder in (site / "pywhispercpp.libs", site / "pywhispercpp" / ".dylibs", site):
        for pattern in _LIBRARY_PATTERNS:
            found = sorted(folder.glob(pattern))
            if found:
                return found[0]
    raise WhisperTuneError(
        f"pywhispercpp is installed in {site} but its ggml library (libggml-base) was not found"
    )
