"""The whisper.cpp GGML Whisper file format: its header, tensor directory, reader and writer.

The file is what whisper.cpp's ``models/convert-h5-to-ggml.py`` writes and its loader
(``whisper_model_load``) reads, all little-endian:

1. ``u32`` magic ``0x67676d6c`` ("ggml");
2. eleven ``i32`` hyper-parameters: n_vocab, n_audio_ctx, n_audio_state, n_audio_head,
   n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype
   (0 f32, 1 f16; quantized files hold ``2 * 1000 + ggml_ftype``);
3. the mel filterbank: ``i32`` n_mel, ``i32`` n_fft (201), then n_mel × n_fft ``f32``;
4. the vocabulary: ``i32`` count, then per token ``u32`` length and its raw bytes (the
   byte-level BPE tokens below ``<|endoftext|>``; whisper.cpp names the special tokens itself);
5. the tensors, each ``i32`` n_dims, ``i32`` name length, ``i32`` ggml type, n_dims ``i32``
   sizes innermost first, the UTF-8 name, then the data.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from whisper_tune.errors import ModelError

GGML_MAGIC = 0x67676D6C
GGML_TYPE_F32, GGML_TYPE_F16 = 0, 1
# ggml type id → (elements per block, bytes per block)
TYPE_SIZES = {0: (1, 4), 1: (1, 2), 6: (32, 22), 8: (32, 34)}


@dataclass(frozen=True)
class GgmlHparams:
    """The header's hyper-parameters, in file order."""

    n_vocab: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int
    n_mels: int
    ftype: int

    @classmethod
    def from_config(cls, config: Any, ftype: int) -> GgmlHparams:
        """From a transformers ``WhisperConfig``."""
        return cls(
            n_vocab=config.vocab_size,
            n_audio_ctx=config.max_source_positions,
            n_audio_state=config.d_model,
            n_audio_head=config.encoder_attention_heads,
            n_audio_layer=config.encoder_layers,
            n_text_ctx=config.max_target_positions,
            n_text_state=config.d_model,
            n_text_head=config.decoder_attention_heads,
            n_text_layer=config.decoder_layers,
            n_mels=config.num_mel_bins,
            ftype=ftype,
        )

    @property
    def multilingual(self) -> bool:
        """whisper.cpp's rule: English-only models have 51864 tokens, multilingual more."""
        return self.n_vocab >= 51865


@dataclass(frozen=True)
class GgmlTensor:
    """One tensor's entry: numpy-order shape, ggml type, where its data lies in the file."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class GgmlModel:
    """Everything in a GGML Whisper file except the tensor data (see :func:`read_ggml`)."""

    path: Path
    hparams: GgmlHparams
    mel_filters: np.ndarray
    tokens: list[bytes]
    tensors: list[GgmlTensor]

    def tensor(self, name: str) -> np.ndarray:
        """The data of an f32/f16 tensor, in numpy order."""
        entry = next((t for t in self.tensors if t.name == name), None)
        if entry is None or entry.ggml_type not in (GGML_TYPE_F32, GGML_TYPE_F16):
            raise KeyError(name)
        dtype = "<f4" if entry.ggml_type == GGML_TYPE_F32 else "<f2"
        count = int(np.prod(entry.shape))
        return np.fromfile(self.path, dtype, count, offset=entry.offset).reshape(entry.shape)


def expected_tensor_count(n_audio_layer: int, n_text_layer: int) -> int:
    """How many tensors whisper.cpp loads: 7 + 15 per encoder block, 4 + 24 per decoder block."""
    return 7 + 15 * n_audio_layer + 4 + 24 * n_text_layer


def read_ggml(path: str | Path) -> GgmlModel:
    """Parse a whisper.cpp GGML Whisper file (header, filters, vocabulary, tensor directory)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        reader = _Reader(f, path)
        if reader.u32() != GGML_MAGIC:
            raise ModelError(f"{path} is not a GGML model file (bad magic)")
        hparams = GgmlHparams(*(reader.i32() for _ in fields(GgmlHparams)))
        n_mel, n_fft = reader.i32(), reader.i32()
        filters = np.frombuffer(reader.take(4 * n_mel * n_fft), "<f4").reshape(n_mel, n_fft)
        tokens = [reader.take(reader.u32()) for _ in range(reader.i32())]
        tensors = []
        while f.tell() < size:
            n_dims, name_length, ggml_type = reader.i32(), reader.i32(), reader.i32()
            dims = [reader.i32() for _ in range(n_dims)]
            name = reader.take(name_length).decode("utf-8")
            if ggml_type not in TYPE_SIZES:
                raise ModelError(f"{path}: tensor {name!r} has unknown ggml type {ggml_type}")
            block, block_bytes = TYPE_SIZES[ggml_type]
            nbytes = int(np.prod(dims)) // block * block_bytes
            tensors.append(GgmlTensor(name, tuple(reversed(dims)), ggml_type, f.tell(), nbytes))
            f.seek(nbytes, os.SEEK_CUR)
        if f.tell() != size:
            raise ModelError(f"{path} is truncated (tensor {tensors[-1].name!r} is incomplete)")
    return GgmlModel(path, hparams, filters.copy(), tokens, tensors)


class _Reader:
    def __init__(self, f: BinaryIO, path: Path) -> None:
        self.f, self.path = f, path

    def take(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise ModelError(f"{self.path} is truncated (ends at byte {self.f.tell()})")
        return data

    def i32(self) -> int:
        return struct.unpack("<i", self.take(4))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]


def write_header(
    out: BinaryIO, hparams: GgmlHparams, filters: np.ndarray, tokens: list[bytes]
) -> None:
    """Magic, hyper-parameters, mel filterbank and vocabulary: everything before the tensors."""
    out.write(struct.pack("<I", GGML_MAGIC))
    out.write(struct.pack(f"<{len(fields(GgmlHparams))}i", *hparams.__dict__.values()))
    out.write(struct.pack("<ii", *filters.shape))
    out.write(filters.astype("<f4").tobytes())
    out.write(struct.pack("<i", len(tokens)))
    for token in tokens:
        out.write(struct.pack("<I", len(token)))
        out.write(token)


def write_tensor(
    out: BinaryIO, name: str, shape: tuple[int, ...], ggml_type: int, data: bytes
) -> None:
    """One tensor entry: dims innermost first, the UTF-8 name, then ``data`` of ``ggml_type``."""
    encoded = name.encode("utf-8")
    out.write(struct.pack("<iii", len(shape), len(encoded), ggml_type))
    out.write(struct.pack(f"<{len(shape)}i", *reversed(shape)))
    out.write(encoded)
    out.write(data)


# whisper.cpp's CPU conv1d (ggml im2col) only takes f16 kernels, and its loader wants f32
# kernels in an f32 file: such files load but cannot run on a CPU (whisper.cpp issue 2557).
F32_HINT = (
    " — whisper.cpp's CPU backend cannot run f32 model files (its conv1d needs f16 kernels); "
    "export with --dtype f16 or --quantize q8_0"
)


def check_ggml_file(path: str | Path) -> GgmlHparams:
    """The hyper-parameters of a GGML Whisper file whisper.cpp can load and run on a CPU;
    anything else (not GGML, truncated, missing tensors, f32) is a :class:`ModelError`."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"GGML model file {path} not found")
    model = read_ggml(path)
    header = model.hparams
    expected = expected_tensor_count(header.n_audio_layer, header.n_text_layer)
    if len(model.tensors) != expected:
        raise ModelError(f"{path} holds {len(model.tensors)} tensors, whisper.cpp needs {expected}")
    return header


def is_ggml_file(path: str | Path) -> bool:
    """Whether ``path`` is a file that starts with the GGML magic."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(4)
    return len(head) == 4 and struct.unpack("<I", head)[0] == GGML_MAGIC
