"""Extract tar archives safely: no member may land outside the target folder."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from whisper_tune.errors import WhisperTuneError


def extract_tar(archive: Path, target_dir: Path, desc: str | None = None) -> list[str]:
    """Extract ``archive`` into ``target_dir`` and return the top-level names it held.

    The archive is only read. Members are extracted into a hidden temporary folder first and
    then moved into place, merging with folders that already exist (the per-speaker AIShell
    archives all hold ``train/``, ``dev/`` or ``test/``), so an interrupted run never leaves a
    half-written file under its final name. Absolute paths, ``..`` components, links and
    device files are refused with a WhisperTuneError naming the member.
    """
    if not archive.is_file():
        raise WhisperTuneError(f"{archive}: archive not found")
    target_dir.mkdir(parents=True, exist_ok=True)
    staging = target_dir / f".extracting-{archive.name}"
    if staging.exists():
        shutil.rmtree(staging)  # left by an interrupted run of ours
    staging.mkdir()
    try:
        with _open(archive) as tar:
            members = [_checked(archive, member) for member in tar]
            total = sum(member.size for member in members)
            with tqdm(
                total=total,
                desc=desc or f"extract {archive.name}",
                unit="B",
                unit_scale=True,
                leave=False,
            ) as progress:
                for member in members:
                    tar.extract(member, staging, **_FILTER)
                    progress.update(member.size)
        tops = sorted({PurePosixPath(member.name).parts[0] for member in members})
        for top in tops:
            _move_merging(staging / top, target_dir / top)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tops


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


def _open(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        raise WhisperTuneError(f"{archive}: not a readable tar archive ({exc})") from None


def _checked(archive: Path, member: tarfile.TarInfo) -> tarfile.TarInfo:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not path.parts or member.name.startswith("\\"):
        raise WhisperTuneError(f"{archive}: refusing unsafe member path {member.name!r}")
    if not (member.isfile() or member.isdir()):
        raise WhisperTuneError(
            f"{archive}: refusing member {member.name!r} (links and devices are not extracted)"
        )
    return member
