"""The seed's binary list format for very large corpora: ``<prefix>.header`` + ``<prefix>.data``.

``.data`` is a sequence of records, each ``uint32 key length, key (ASCII), uint32 value
length, value`` where the value is one JSONL line (UTF-8 JSON) and the integers are
little-endian. ``.header`` has one ASCII line per record, ``key<TAB>offset<TAB>length``,
giving where the value starts in ``.data`` and its byte length. Keys are ``0, 1, 2 ...``.
"""

from __future__ import annotations

import json
import mmap
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from whisper_tune.data.manifest import Utterance, parse_record, write_manifest
from whisper_tune.errors import ManifestError

_LENGTH = struct.Struct("<I")


def binary_paths(path: str | Path) -> tuple[Path, Path]:
    """``(header, data)`` for ``x.header``, ``x.data`` or the prefix ``x``."""
    path = Path(path)
    prefix = path.with_suffix("") if path.suffix in (".header", ".data") else path
    return prefix.with_name(prefix.name + ".header"), prefix.with_name(prefix.name + ".data")


def write_seed_binary(path: str | Path, utterances: Iterable[Utterance]) -> int:
    """Write utterances in the seed's format (audio paths relative to the files' folder)."""
    header, data = binary_paths(path)
    header.parent.mkdir(parents=True, exist_ok=True)
    tmp_header = header.with_name(f".{header.name}.tmp")
    tmp_data = data.with_name(f".{data.name}.tmp")
    count = offset = 0
    with tmp_header.open("wb") as index, tmp_data.open("wb") as blob:
        for utterance in utterances:
            key = str(count).encode("ascii")
            value = json.dumps(utterance.to_json(relative_to=header.parent), ensure_ascii=False)
            value_bytes = value.encode("utf-8")
            blob.write(_LENGTH.pack(len(key)) + key + _LENGTH.pack(len(value_bytes)) + value_bytes)
            offset += 2 * _LENGTH.size + len(key)
            index.write(f"{count}\t{offset}\t{len(value_bytes)}\n".encode("ascii"))
            offset += len(value_bytes)
            count += 1
    tmp_data.replace(data)
    tmp_header.replace(header)
    return count


def iter_seed_binary(path: str | Path, base_dir: str | Path | None = None) -> Iterator[Utterance]:
    """Yield the utterances of a seed ``.header``/``.data`` pair, validated like JSONL lines.

    Relative audio paths resolve against ``base_dir`` (default: the header's folder; the
    seed's own lists hold paths relative to the folder it ran in, so pass that one).
    """
    header, data = binary_paths(path)
    for required in (header, data):
        if not required.is_file():
            raise ManifestError(
                f"{required}: file not found (the seed's format needs both .header and .data)"
            )
    base = Path(base_dir) if base_dir is not None else header.resolve().parent
    with data.open("rb") as blob, header.open("rb") as index:
        view = mmap.mmap(blob.fileno(), 0, access=mmap.ACCESS_READ) if data.stat().st_size else b""
        try:
            for number, line in enumerate(index, 1):
                if not line.strip():
                    continue
                where = f"{header}:{number}"
                offset, length = _index_line(line, where)
                if offset < _LENGTH.size or offset + length > len(view):
                    raise ManifestError(f"{where}: offset {offset}+{length} is outside {data.name}")
                if _LENGTH.unpack_from(view, offset - _LENGTH.size)[0] != length:
                    raise ManifestError(
                        f"{where}: length does not match {data.name}; "
                        "the two files do not belong together"
                    )
                try:
                    record = json.loads(bytes(view[offset : offset + length]).decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise ManifestError(f"{where}: record is not valid JSON ({exc})") from None
                yield parse_record(record, base, where)
        finally:
            if isinstance(view, mmap.mmap):
                view.close()


def seed_binary_to_jsonl(
    path: str | Path, output: str | Path, base_dir: str | Path | None = None
) -> int:
    """Convert a seed ``.header``/``.data`` pair to a JSONL manifest; return the line count."""
    return write_manifest(output, iter_seed_binary(path, base_dir))


def _index_line(line: bytes, where: str) -> tuple[int, int]:
    fields = line.strip().split(b"\t")
    try:
        _, offset, length = fields
        return int(offset), int(length)
    except ValueError:
        raise ManifestError(f"{where}: expected 'key<TAB>offset<TAB>length'") from None
