"""Hugging Face Whisper → CTranslate2, with the files faster-whisper needs and a parity check.

The converter is CTranslate2's own ``TransformersConverter``. The output folder also gets
``tokenizer.json``, ``preprocessor_config.json`` and ``generation_config.json``, so that
faster-whisper never reaches for the hub. The parity check decodes one sample greedily
with the Hugging Face model and with the converted model (in its own quantization) and
reports both transcripts and how many tokens agree.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from whisper_tune.audio_context import copy_marker
from whisper_tune.convert.parity import greedy_parity, parity_clip
from whisper_tune.errors import ModelError
from whisper_tune.fsutil import atomic_dir
from whisper_tune.models import load_processor
from whisper_tune.resolve import resolve_hf_model

log = logging.getLogger("whisper_tune.convert")

QUANTIZATIONS = ("float16", "int8", "int8_float16", "int8_float32", "float32", "bfloat16")
REPORT_NAME = "conversion_report.json"


def convert_to_ct2(
    model_path: str,
    output_dir: str | Path,
    quantization: str = "float16",
    audio_path: str | Path | None = None,
    check: bool = True,
    local_files_only: bool = False,
) -> dict[str, Any]:
    """Convert ``model_path`` (HF dir, bundled name or hub id) into ``output_dir``.

    The folder is written to a temporary sibling and renamed into place when complete.
    Unless ``check`` is False, a parity check runs on the first 30 s of ``audio_path`` (or a
    recorded English sentence). Returns the report, also saved as ``conversion_report.json``
    in the output folder.
    """
    if quantization not in QUANTIZATIONS:
        raise ModelError(
            f"unknown quantization {quantization!r}: use one of {', '.join(QUANTIZATIONS)}"
        )
    source = resolve_hf_model(model_path, local_files_only)
    output_dir = Path(output_dir)
    sample = parity_clip(audio_path) if check else None
    started = time.perf_counter()
    report: dict[str, Any] = {
        "model_path": str(model_path),
        "output_dir": str(output_dir),
        "quantization": quantization,
    }
    with atomic_dir(output_dir) as scratch:
        processor = load_processor(source, local_files_only)
        _run_converter(source, scratch, quantization)
        _write_side_files(source, scratch, processor)
        report["dynamic_audio_ctx"] = copy_marker(source, scratch)
        report["conversion_seconds"] = round(time.perf_counter() - started, 2)
        if sample is not None:
            audio, name = sample
            report["parity"] = {
                "audio": name,
                **greedy_parity(source, scratch, audio, compute_type="default", deployed=True),
            }
        (scratch / REPORT_NAME).write_text(
            json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    return report


def _run_converter(source: str, target: Path, quantization: str) -> None:
    from ctranslate2.converters import TransformersConverter

    try:
        TransformersConverter(source, low_cpu_mem_usage=True).convert(
            str(target), quantization=quantization, force=True
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"CTranslate2 cannot convert {source}: {exc}") from None


def _write_side_files(source: str, target: Path, processor) -> None:
    """tokenizer.json, preprocessor_config.json and generation_config.json for faster-whisper."""
    source_dir = Path(source)
    tokenizer_file = source_dir / "tokenizer.json"
    if tokenizer_file.is_file():
        shutil.copyfile(tokenizer_file, target / "tokenizer.json")
    else:
        processor.tokenizer.backend_tokenizer.save(str(target / "tokenizer.json"))
    features = processor.feature_extractor.to_dict()
    (target / "preprocessor_config.json").write_text(
        json.dumps(features, indent=2) + "\n", encoding="utf-8"
    )
    generation = source_dir / "generation_config.json"
    if generation.is_file():
        shutil.copyfile(generation, target / "generation_config.json")
