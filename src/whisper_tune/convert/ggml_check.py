"""Check a GGML export with whisper.cpp itself: its transcript of a clip against the Hugging
Face model's greedy transcript.

whisper.cpp runs through the pywhispercpp bindings (which ship whisper.cpp's own library) in a
child process, decoding greedily at temperature 0 with no fallback, without timestamps and with the
non-speech tokens suppressed — the settings of a Hugging Face ``generate`` with Whisper's
generation config. Each engine computes its own log-mel features from the waveform.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from whisper_tune.audio import SAMPLE_RATE, load_audio
from whisper_tune.audio_context import FRAMES_PER_POSITION, frames_of, read_marker
from whisper_tune.convert.parity import hf_greedy_ids
from whisper_tune.errors import AudioError, ModelError, WhisperTuneError
from whisper_tune.inference.ggml_format import F32_HINT, check_ggml_file
from whisper_tune.languages import language_code
from whisper_tune.resolve import resolve_hf_model
from whisper_tune.text import TextOptions

MAX_CHECK_SECONDS = 30.0
_RESULT = "whisper-tune-result: "
_CONV_F16_ASSERT = "src0->type == GGML_TYPE_F16"  # whisper.cpp's assertion on f32 files
_LOG_PROBLEM = re.compile(r"error|fail|invalid|wrong|unknown|WARN", re.IGNORECASE)


def check_ggml(
    ggml_path: str | Path,
    model_ref: str,
    audio_path: str | Path,
    language: str | None = None,
    local_files_only: bool = False,
) -> dict[str, Any]:
    """Transcribe ``audio_path`` (at most 30 s) with whisper.cpp from ``ggml_path`` and with the
    Hugging Face model ``model_ref`` (a directory, bundled name or hub id); report both texts
    and whether they match once normalised.

    A multilingual model decodes in ``language``, or else in the language the Hugging Face
    model detects, with both engines. A model marked for a short audio context
    (``finetune --dynamic_audio_ctx``) is checked as it will run: both engines encode only the
    clip's own context (``audio_ctx`` positions, whisper.cpp's ``-ac``).
    """
    audio = load_audio(audio_path)
    seconds = len(audio) / SAMPLE_RATE
    if seconds > MAX_CHECK_SECONDS:
        raise AudioError(
            f"{audio_path} is {seconds:.1f} s long; the check takes a clip of at most "
            f"{MAX_CHECK_SECONDS:.0f} s (one window, decoded in one go by both engines)"
        )
    reference = resolve_hf_model(str(model_ref), local_files_only)
    rule = read_marker(reference)
    positions = rule.positions(frames_of(len(audio))) if rule else None
    hf_text, code = hf_greedy_text(
        reference, audio, language_code(language), local_files_only, positions
    )
    cpp_text = whisper_cpp_text(ggml_path, audio, code, positions)
    options = TextOptions(remove_pun=True, english_normalizer=code in (None, "en"))
    hf_norm, cpp_norm = options.apply(hf_text).lower(), options.apply(cpp_text).lower()
    return {
        "audio": str(audio_path),
        "language": code or "en",
        "audio_ctx": positions or "full",
        "hf_text": hf_text,
        "whisper_cpp_text": cpp_text,
        "hf_normalized": hf_norm,
        "whisper_cpp_normalized": cpp_norm,
        "same_text": hf_norm == cpp_norm,
    }


def hf_greedy_text(
    model_ref: str,
    audio: np.ndarray,
    language: str | None,
    local_files_only: bool = False,
    audio_ctx: int | None = None,
) -> tuple[str, str | None]:
    """Greedy transcript of one ≤30 s clip (with ``audio_ctx``: its encoder on that many
    positions) and the language it was decoded in (``None`` for an English-only model)."""
    import torch

    from whisper_tune.models import load_processor, load_whisper

    processor = load_processor(model_ref, local_files_only=local_files_only)
    model = load_whisper(model_ref, local_files_only=local_files_only, dtype=torch.float32)
    features = processor.feature_extractor(
        audio, sampling_rate=SAMPLE_RATE, return_tensors="pt"
    ).input_features
    if model.generation_config.is_multilingual:
        if language is None:
            with torch.no_grad():
                token = int(model.detect_language(features)[0])
            language = processor.tokenizer.convert_ids_to_tokens(token).strip("<|>")
    else:
        language = None
    frames = audio_ctx * FRAMES_PER_POSITION if audio_ctx else None
    ids = hf_greedy_ids(model, features, language, frames)
    return processor.tokenizer.decode(ids, skip_special_tokens=True).strip(), language


def whisper_cpp_text(
    ggml_path: str | Path, audio: np.ndarray, language: str | None, audio_ctx: int | None = None
) -> str:
    """whisper.cpp's greedy transcript of ``audio`` with the model file ``ggml_path`` (with
    ``audio_ctx``: its encoder on that many positions, ``-ac``).

    whisper.cpp runs in a child process: a file it cannot load becomes an error quoting its
    loader's log rather than a crash of this process.
    """
    if importlib.util.find_spec("pywhispercpp") is None:
        raise WhisperTuneError(
            "the whisper.cpp check needs pywhispercpp: pip install 'whisper-tune[ggml]' "
            "(or pip install pywhispercpp)"
        )
    path = Path(ggml_path)
    header = check_ggml_file(path)
    with tempfile.TemporaryDirectory(prefix="whisper-tune-ggml-") as tmp:
        samples = Path(tmp) / "audio.npy"
        np.save(samples, np.ascontiguousarray(audio, dtype=np.float32))
        command = [sys.executable, "-m", __name__, str(path), str(samples), language or "en"]
        command.append(str(audio_ctx or 0))  # 0: whisper.cpp's full window
        env = {**os.environ, "GGML_NO_BACKTRACE": "1"}  # no gdb attach on a failed assertion
        proc = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith(_RESULT):
        log = [line for line in proc.stderr.splitlines() if _LOG_PROBLEM.search(line)]
        hint = F32_HINT if header.ftype == 0 and _CONV_F16_ASSERT in proc.stderr else ""
        raise ModelError(
            f"whisper.cpp could not transcribe with {path}: "
            + ("; ".join(log[-3:]) or f"exit code {proc.returncode}")
            + hint
        )
    return json.loads(lines[-1][len(_RESULT) :])


def _transcribe(ggml_path: str, samples_path: str, language: str, audio_ctx: str) -> str:
    """Child-process side of :func:`whisper_cpp_text`."""
    from pywhispercpp.model import Model

    model = Model(
        ggml_path,
        redirect_whispercpp_logs_to=False,
        n_threads=min(4, os.cpu_count() or 1),
        print_progress=False,
        print_realtime=False,
    )
    segments = model.transcribe(
        np.load(samples_path),
        language=language,
        temperature=0.0,
        temperature_inc=0.0,
        no_timestamps=True,
        suppress_nst=True,
        no_context=True,
        audio_ctx=int(audio_ctx),
    )
    return " ".join(segment.text.strip() for segment in segments).strip()


if __name__ == "__main__":
    print(_RESULT + json.dumps(_transcribe(*sys.argv[1:5])), flush=True)
