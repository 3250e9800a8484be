"""Extract tar archives safely: no member may land outside the target folder."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from whisper_tune.errors import WhisperTuneError


def extract_tar(archive: Path, target_dir: Path, progress: bool = True) -> list[str]:
    """Extract ``archive`` into ``target_dir`` and return the top-level names it held.

    The archive is only read, front to back in one pass. Members are extracted into a hidden
    temporary folder first and then moved into place, merging with folders that already
    exist (the per-speaker AIShell archives all hold ``train/``, ``dev/`` or ``test/``), so an
    interrupted run never leaves a half-written file under its final name. Absolute paths,
    ``..`` components, links and device files are refused with a WhisperTuneError naming
    the member.
    """
    if not archive.is_file():
        raise WhisperTuneError(f"{archive}: archive not found")
    target_dir.mkdir(parents=True, exist_ok=True)
    staging = target_dir / f".extracting-{archive.name}"
    if staging.exists():
        shutil.rmtree(staging)  # left by an interrupted run of ours
    staging.mkdir()
    tops: set[str] = set()
    try:
        with (
            archive.open("rb") as raw,
            tqdm(
                total=archive.stat().st_size,
                desc=f"extract {archive.name}",
                unit="B",
                unit_scale=True,
                disable=not progress,
            ) as bar,
        ):
            try:
                with tarfile.open(fileobj=_Counted(raw, bar), mode="r|*") as tar:
                    for member in tar:
                        tar.extract(_checked(archive, member), staging, **_FILTER)
                        tops.add(PurePosixPath(member.name).parts[0])
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise WhisperTuneError(f"{archive}: cannot extract ({exc})") from None
        for top in sorted(tops):
            _move_merging(staging / top, target_dir / top)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(tops)


class _Counted:
    """A read-only file wrapper that advances a progress bar by the bytes read."""

    def __init__(self, raw, bar: tqdm):
        self.raw, self.bar = raw, bar

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.bar.update(len(data))
        return data


def _move_merging(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; when both are folders, merge them entry by entry."""
    if target.is_dir() and source.is_dir() and not target.is_symlink():
        for child in source.iterdir():
            _move_merging(child, target / child.name)
        return
    if target.is_dir() and not target.is_symlink():
        raise WhisperTuneError(f"{target}: a folder is in the way of an extracted file")
    source.replace(target)


_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def _checked(archive: Path, member: tarfile.TarInfo) -> tarfile.TarInfo:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not path.parts or member.name.startswith("\\"):
        raise WhisperTuneError(f"{archive}: refusing unsafe member path {member.name!r}")
    if not (member.isfile() or member.isdir()):
        raise WhisperTuneError(
            f"{archive}: refusing member {member.name!r} (links and devices are not extracted)"
        )
    return member
