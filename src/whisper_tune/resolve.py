"""Resolve a model reference — bundled name, local dir, or hub id — to a Hugging Face Whisper.

This sits above model loading (:mod:`whisper_tune.models`) and the bundled models
(:mod:`whisper_tune.zoo`): a bundled name is turned into a Hugging Face directory by an
``import-ct2`` run the first time, which is a conversion, so the core layer never does it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from whisper_tune import zoo
from whisper_tune.convert.ct2_import import import_ct2
from whisper_tune.errors import ModelError
from whisper_tune.models import HF_WEIGHT_FILES, is_ct2_dir, is_hf_dir

# Bump when import-ct2 changes what it writes, so old cached imports are rebuilt.
IMPORT_FORMAT = 1


def resolve_hf_model(reference: str, local_files_only: bool = False) -> str:
    """Return something ``from_pretrained`` accepts for ``reference``.

    A bundled name ("tiny.en", "base") is imported once into the cache; a local directory
    must be a Hugging Face Whisper dir; anything else is taken as a hub id (downloaded by
    transformers unless ``local_files_only``).
    """
    if reference in zoo.BUNDLED_MODELS:
        return str(bundled_hf_dir(reference))
    path = Path(reference).expanduser()
    if path.exists():
        if is_hf_dir(path):
            return str(path)
        if is_ct2_dir(path):
            raise ModelError(
                f"{path} is a CTranslate2 model; turn it into a Hugging Face model first with "
                f"'whisper-tune import-ct2 --model_path {path} --output_dir <dir>'"
            )
        raise ModelError(
            f"{path} is not a Whisper model directory (expected config.json with "
            f"model_type 'whisper' and one of {', '.join(HF_WEIGHT_FILES)})"
        )
    if local_files_only or reference.startswith((".", "/", "~")):
        raise ModelError(
            f"model {reference!r} not found: not a directory, not a bundled model "
            f"({', '.join(zoo.BUNDLED_MODELS)})"
            + (" and --local_files_only is set" if local_files_only else "")
        )
    return reference


def bundled_hf_dir(name: str) -> Path:
    """A Hugging Face Whisper directory for a bundled model: imported once with
    ``import-ct2`` (parity-checked) into ``<cache>/hf-<format>/<name>``, then reused."""
    target = zoo.cache_root() / f"hf-{IMPORT_FORMAT}" / name
    if is_hf_dir(target):
        return target
    ct2_dir = zoo.bundled_ct2_dir(name)
    print(f"whisper-tune: importing the bundled {name} model once into {target}", file=sys.stderr)

    def build(scratch: Path) -> Path:
        report = import_ct2(ct2_dir, scratch / "model")
        if not report["parity"]["same_text"]:
            raise ModelError(f"the imported {name} does not match CTranslate2: {report}")
        return scratch / "model"

    return zoo.publish_dir(target, build)
