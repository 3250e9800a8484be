"""Hugging Face Whisper → CTranslate2, with the files faster-whisper needs and a parity check.

The converter is CTranslate2's own ``TransformersConverter``. The output folder also gets
``tokenizer.json``, ``preprocessor_config.json`` and ``generation_config.json``, so that
faster-whisper never reaches for the hub. The parity check decodes one sample greedily
with the Hugging Face model and with the converted model (in its own quantization) and
reports both transcripts and how many tokens agree.
"""

from __future__ import annotations

import difflib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from whisper_tune.audio import SAMPLE_RATE, load_audio
from whisper_tune.errors import ModelError
from whisper_tune.fsutil import atomic_dir
from whisper_tune.models import load_processor, load_whisper, resolve_hf_model

log = logging.getLogger("whisper_tune.convert")

QUANTIZATIONS = ("float16", "int8", "int8_float16", "int8_float32", "float32", "bfloat16")
REPORT_NAME = "conversion_report.json"
PARITY_SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
PARITY_FEATURES = (
    "both models decode the same log-mel features from the Hugging Face feature extractor "
    "(waveform padded with silence to 30 s); faster-whisper in deployment pads the features "
    "with zeros instead, so its transcript ('deployed_text') can differ slightly"
)


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
    synthesised English sentence). Returns the report, also saved as ``conversion_report.json``
    in the output folder.
    """
    if quantization not in QUANTIZATIONS:
        raise ModelError(
            f"unknown quantization {quantization!r}: use one of {', '.join(QUANTIZATIONS)}"
        )
    source = resolve_hf_model(model_path, local_files_only)
    output_dir = Path(output_dir)
    sample = _parity_sample(audio_path) if check else None
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
        report["conversion_seconds"] = round(time.perf_counter() - started, 2)
        if sample is not None:
            audio, name = sample
            report["parity"] = {
                "audio": name,
                **parity_check(source, scratch, audio, processor, local_files_only),
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


def _parity_sample(audio_path: str | Path | None) -> tuple[np.ndarray, str]:
    """The first 30 s of the user's file, else a synthesised English sentence."""
    if audio_path is not None:
        audio = load_audio(audio_path)
        return audio[: 30 * SAMPLE_RATE], str(audio_path)
    from whisper_tune.synth import synthesize

    return synthesize(PARITY_SENTENCE, "en", seed=0), f"synthesised: {PARITY_SENTENCE!r}"


def parity_check(
    hf_dir: str | Path,
    ct2_dir: str | Path,
    audio: np.ndarray,
    processor=None,
    local_files_only: bool = True,
) -> dict[str, Any]:
    """Greedy transcripts of ``audio`` (≤ 30 s) from both models and their token agreement.

    ``token_agreement`` is the share of tokens the two greedy decodes have in common after
    aligning them (difflib), over the longer of the two: 1.0 means identical token ids.
    ``deployed_text`` is what faster-whisper itself transcribes (its own features).
    """
    import ctranslate2
    import torch
    from faster_whisper import WhisperModel

    processor = processor or load_processor(str(hf_dir), local_files_only)
    tokenizer = processor.tokenizer
    features = processor.feature_extractor(
        audio, sampling_rate=SAMPLE_RATE, return_tensors="np"
    ).input_features.astype(np.float32)
    ct2 = ctranslate2.models.Whisper(str(ct2_dir), device="cpu")
    storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(features))

    prompt = ["<|startoftranscript|>"]
    generate_kwargs: dict[str, Any] = {}
    language = "en"
    if ct2.is_multilingual:
        language = ct2.detect_language(storage)[0][0][0].strip("<|>")
        prompt += [f"<|{language}|>", "<|transcribe|>"]
        generate_kwargs = {"language": language, "task": "transcribe"}
    prompt.append("<|notimestamps|>")
    ct2_ids = [int(t) for t in ct2.generate(storage, [prompt], beam_size=1)[0].sequences_ids[0]]

    model = load_whisper(str(hf_dir), local_files_only, dtype=torch.float32).eval()
    with torch.inference_mode():
        generated = model.generate(
            torch.from_numpy(features), num_beams=1, do_sample=False, **generate_kwargs
        )[0]
    special = set(tokenizer.all_special_ids)
    hf_ids = [int(t) for t in generated if int(t) not in special]

    deployed = WhisperModel(str(ct2_dir), device="cpu", local_files_only=True)
    deployed_segments, _ = deployed.transcribe(
        audio, language=language, beam_size=1, temperature=0.0, without_timestamps=True
    )
    hf_text = tokenizer.decode(hf_ids, skip_special_tokens=True).strip()
    ct2_text = tokenizer.decode(ct2_ids, skip_special_tokens=True).strip()
    return {
        "features": PARITY_FEATURES,
        "language": language,
        "hf_text": hf_text,
        "ct2_text": ct2_text,
        "deployed_text": " ".join(s.text.strip() for s in deployed_segments),
        "hf_tokens": len(hf_ids),
        "ct2_tokens": len(ct2_ids),
        "token_agreement": round(token_agreement(hf_ids, ct2_ids), 4),
        "same_text": hf_text == ct2_text,
        "ct2_compute_type": ct2.compute_type,
    }


def token_agreement(a: list[int], b: list[int]) -> float:
    """Matched tokens after alignment over the longer sequence (1.0 when both are empty)."""
    if not a and not b:
        return 1.0
    matched = sum(block.size for block in difflib.SequenceMatcher(None, a, b).get_matching_blocks())
    return matched / max(len(a), len(b))
