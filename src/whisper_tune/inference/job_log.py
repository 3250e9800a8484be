"""A resumable per-file job: one JSON line appended (and synced) as each file finishes.

Each line names the file by its key (``audio_path``, ``size``, ``mtime``) and says ``ok``
with the job's ``result`` record, or ``ok: false`` with the ``error``. A rerun reads the log
and skips every file whose key is already done OK (a file changed since has a new key and
is done again); a failed file is tried again. A job killed mid-write leaves at most a
truncated last line, which is ignored and cut off before the next line is appended. Any
per-file job can use it: ``transcribe --ray`` and ``label`` do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from whisper_tune.errors import WhisperTuneError


@dataclass(frozen=True)
class FileKey:
    """A file as it was when decoded: a rerun redoes it when its size or mtime changed."""

    audio_path: str
    size: int
    mtime: float

    @classmethod
    def of(cls, path: str | Path) -> FileKey:
        stat = Path(path).stat()
        return cls(str(path), stat.st_size, stat.st_mtime)


@dataclass(frozen=True)
class Entry:
    """One line of the log."""

    key: FileKey
    ok: bool
    result: dict[str, Any] | None = None
    error: str | None = None
    worker: str | None = None  # "host:pid" of the process that decoded it

    def to_json(self) -> str:
        line: dict[str, Any] = {**asdict(self.key), "ok": self.ok}
        line |= {"result": self.result} if self.ok else {"error": self.error}
        line |= {"worker": self.worker} if self.worker else {}
        return json.dumps(line, ensure_ascii=False)


def read_entries(path: str | Path) -> list[Entry]:
    """Every complete line of the log at ``path`` (none if it does not exist), in order.

    A last line without its newline (the job was killed while writing it) is left out; a bad
    line anywhere else raises an error naming ``file:line``.
    """
    path = Path(path)
    if not path.exists():
        return []
    entries = []
    for number, line, complete in _lines(path):
        if not complete:
            break
        try:
            record = json.loads(line)
            key = FileKey(record["audio_path"], int(record["size"]), float(record["mtime"]))
            ok = bool(record["ok"])
            result, error, worker = record.get("result"), record.get("error"), record.get("worker")
            entries.append(Entry(key, ok, result, error, worker))
        except (ValueError, KeyError, TypeError) as exc:
            raise WhisperTuneError(
                f"{path}:{number}: not a job-log line ({type(exc).__name__}: {exc}); "
                "remove the line to resume"
            ) from None
    return entries


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, ended by a newline) of each non-blank line."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield number, line, line.endswith("\n")


class JobLog:
    """The append-only log of a per-file job at ``path``; use it as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.entries = read_entries(self.path)
        self.done = {e.key for e in self.entries if e.ok}
        self._handle: IO[str] | None = None

    def todo(self, files: Iterable[str | Path]) -> tuple[list[FileKey], int]:
        """The keys of ``files`` not yet done OK (each once, in order), and how many were."""
        keys = list(dict.fromkeys(FileKey.of(f) for f in files))
        left = [key for key in keys if key not in self.done]
        return left, len(keys) - len(left)

    def __enter__(self) -> JobLog:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._cut_partial_line()
        self._handle = self.path.open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def record(self, entry: Entry) -> bool:
        """Append ``entry`` and sync it to disk; False (nothing written) when its file is
        already done OK, so a result delivered twice is kept once."""
        if self._handle is None:
            raise RuntimeError("JobLog.record outside its with block")
        if entry.key in self.done:
            return False
        self._handle.write(entry.to_json() + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.entries.append(entry)
        if entry.ok:
            self.done.add(entry.key)
        return True

    def _cut_partial_line(self) -> None:
        """Drop a truncated last line, so the next line starts on its own (the tail is read
        backwards a block at a time: a log of a whole archive is never read twice)."""
        if not self.path.exists():
            return
        with self.path.open("r+b") as handle:
            end = position = handle.seek(0, os.SEEK_END)
            while position > 0:
                step = min(1 << 16, position)
                position -= step
                handle.seek(position)
                block = handle.read(step)
                if position + step == end and block.endswith(b"\n"):
                    return
                cut = block.rfind(b"\n")
                if cut >= 0:
                    handle.truncate(position + cut + 1)
                    return
            handle.truncate(0)
