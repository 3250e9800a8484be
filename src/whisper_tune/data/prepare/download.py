"""Download a corpus archive with resume (HTTP Range) and a checksum check."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from whisper_tune.errors import WhisperTuneError

_CHUNK = 1 << 20


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, target_dir: Path, md5: str | None = None, timeout: float = 30.0) -> Path:
    """Fetch ``url`` into ``target_dir`` and return the file's path.

    A finished file with the right checksum is reused. Bytes already fetched into
    ``<name>.part`` are kept and the rest requested with a Range header; the file is renamed to
    its final name only after the checksum matches.
    """
    target_dir.mkdir(parents=True, exist_ok=True)
    final = target_dir / url.rstrip("/").rsplit("/", 1)[-1]
    if final.is_file() and (md5 is None or file_digest(final) == md5):
        return final
    part = final.with_name(final.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if have and response.status != 206:  # the server ignored Range: start over
                have = 0
            total = response.length + have if response.length is not None else None
            with (
                part.open("ab" if have else "wb") as out,
                tqdm(
                    total=total,
                    initial=have,
                    desc=f"download {final.name}",
                    unit="B",
                    unit_scale=True,
                ) as progress,
            ):
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    progress.update(len(chunk))
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch
            pass
        else:
            raise WhisperTuneError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WhisperTuneError(
            f"cannot download {url} ({reason}); fetch it yourself and pass its path with "
            "--filepath (partial downloads are resumed on the next run)"
        ) from None
    if md5 is not None:
        got = file_digest(part)
        if got != md5:
            bad = part.with_name(part.name + ".bad")
            part.replace(bad)
            raise WhisperTuneError(
                f"{url}: checksum mismatch (md5 {got}, expected {md5}); the download was moved "
                f"to {bad} and the next run starts over"
            )
    part.replace(final)
    return final
