"""Parity check between a Hugging Face Whisper dir and a CTranslate2 Whisper dir.

Both models get the very same log-mel features (the Hugging Face feature extractor's: the
waveform padded to 30 s) and decode greedily with the same prompt. ``import-ct2`` runs
CTranslate2 in float32 (the weights must match exactly); ``convert`` runs it in the stored
quantization and also reports what faster-whisper itself transcribes (its own features).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import numpy as np

from whisper_tune.audio import SAMPLE_RATE, load_audio
from whisper_tune.languages import default_metric
from whisper_tune.text import metric_units

# A recording of this sentence (synthesised once with hibari's bundled voice, seed 0) ships with
# the package, so a parity check needs neither an audio file from the user nor the demo extra.
REFERENCE_TEXT = "The quick brown fox jumps over the lazy dog, then rests by the river bank."
REFERENCE_CLIP = Path(__file__).with_name("parity_clip.flac")
MAX_SECONDS = 30
# A converted model passes its parity check when at least this share of the transcript's words
# (characters, in languages written without spaces) agree. Counted on text, not tokens: the
# byte-level vocabulary spells one Chinese character with up to three tokens, so one character
# that int8 quantization flips on an uncertain name would otherwise count three times.
MIN_AGREEMENT = 0.8

FEATURES_NOTE = (
    "both models decode the same log-mel features from the Hugging Face feature extractor "
    "(waveform padded with silence to 30 s), greedily; faster-whisper in deployment pads the "
    "features with zeros instead, so its transcript ('deployed_text') can differ slightly"
)


def parity_clip(audio_path: str | Path | None = None) -> tuple[np.ndarray, str]:
    """The clip both models decode and its name: the first 30 s of ``audio_path``, else the
    recorded :data:`REFERENCE_TEXT`."""
    if audio_path is None:
        return load_audio(REFERENCE_CLIP), f"recorded: {REFERENCE_TEXT!r}"
    return load_audio(audio_path)[: MAX_SECONDS * SAMPLE_RATE], str(audio_path)


def greedy_parity(
    hf_dir: str | Path,
    ct2_dir: str | Path,
    audio: np.ndarray,
    language: str | None = None,
    compute_type: str = "float32",
    deployed: bool = False,
) -> dict[str, Any]:
    """Decode ``audio`` (16 kHz mono, at most 30 s) greedily with both models and compare.

    For a multilingual model each side also detects the language; both then decode in
    ``language`` (a code such as "zh") or, when it is None, in the one CTranslate2 detected,
    so that the texts compare like for like. English-only models ignore ``language``.
    ``token_agreement`` is the share of aligned tokens over the longer decode (1.0: identical).
    With ``deployed``, faster-whisper also transcribes the clip as it would in production.
    """
    import ctranslate2
    import torch

    from whisper_tune.models import load_processor, load_whisper

    processor = load_processor(str(hf_dir), local_files_only=True)
    model = load_whisper(str(hf_dir), local_files_only=True, dtype=torch.float32).eval()
    features = processor.feature_extractor(
        audio, sampling_rate=16000, return_tensors="np"
    ).input_features.astype(np.float32)
    ct2 = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type=compute_type)
    storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(features))
    tensor = torch.from_numpy(features)

    with torch.no_grad():
        hf_encoded = model.model.encoder(tensor).last_hidden_state.numpy()
    encoder_diff = float(np.abs(np.array(ct2.encode(storage)) - hf_encoded).max())

    tokenizer = processor.tokenizer
    prompt = ["<|startoftranscript|>"]
    result: dict[str, Any] = {
        "features": FEATURES_NOTE,
        "ct2_compute_type": ct2.compute_type,
        "encoder_max_abs_diff": encoder_diff,
        "language": "en",
    }
    if ct2.is_multilingual:
        ct2_language = ct2.detect_language(storage)[0][0][0]
        with torch.no_grad():
            hf_language_id = int(model.detect_language(tensor)[0])
        result["ct2_language"] = ct2_language
        result["hf_language"] = tokenizer.convert_ids_to_tokens(hf_language_id)
        result["same_language"] = ct2_language == result["hf_language"]
        decode_language = f"<|{language}|>" if language else ct2_language
        result["decode_language"] = decode_language
        result["language"] = decode_language.strip("<|>")
        prompt += [decode_language, "<|transcribe|>"]
    prompt.append("<|notimestamps|>")

    # CTranslate2 (like openai/whisper) samples at most half the text context; a decode that
    # never ends (a random or broken model) is capped the same way on both sides
    max_length = model.config.max_target_positions
    ct2_ids = ct2.generate(storage, [prompt], beam_size=1, max_length=max_length)
    ct2_ids = [int(t) for t in ct2_ids[0].sequences_ids[0]]
    generated = hf_greedy_ids(model, tensor, result["language"] if ct2.is_multilingual else None)
    special = set(tokenizer.all_special_ids)
    hf_ids = [t for t in generated if t not in special]
    ct2_ids = [t for t in ct2_ids if t not in special]
    ct2_text = tokenizer.decode(ct2_ids, skip_special_tokens=True).strip()
    hf_text = tokenizer.decode(hf_ids, skip_special_tokens=True).strip()
    result.update(
        ct2_text=ct2_text,
        hf_text=hf_text,
        hf_tokens=len(hf_ids),
        ct2_tokens=len(ct2_ids),
        token_agreement=round(token_agreement(hf_ids, ct2_ids), 4),
        text_agreement=round(text_agreement(hf_text, ct2_text, result["language"]), 4),
        same_tokens=ct2_ids == hf_ids,
        same_text=ct2_text == hf_text,
    )
    if deployed:
        result["deployed_text"] = _faster_whisper_text(ct2_dir, audio, result["language"])
    return result


def hf_greedy_ids(model, features, language: str | None, frames: int | None = None) -> list[int]:
    """The reference decode of every conversion check: a Hugging Face Whisper's greedy tokens
    for one window of log-mel ``features`` (in ``language`` for a multilingual model), capped
    at half the text context as CTranslate2 and openai/whisper cap a decode. With ``frames``
    the encoder reads only the window's first ``frames`` (a short audio context)."""
    import torch

    from whisper_tune.models import encode_audio

    kwargs = {"language": language, "task": "transcribe"} if language else {}
    with torch.no_grad():
        if frames is None:
            inputs = {"input_features": features}
        else:
            inputs = {"encoder_outputs": encode_audio(model.get_encoder(), features[..., :frames])}
        generated = model.generate(
            **inputs,
            num_beams=1,
            do_sample=False,
            max_new_tokens=model.config.max_target_positions // 2,
            **kwargs,
        )
    return [int(t) for t in generated[0]]


def parity_passed(parity: dict[str, Any]) -> bool:
    """Whether a :func:`greedy_parity` result shows a faithful conversion."""
    return parity["text_agreement"] >= MIN_AGREEMENT


def text_agreement(reference: str, hypothesis: str, language: str) -> float:
    """:func:`token_agreement` over the units the language's metric counts (words or characters)."""
    metric = default_metric(language)
    return token_agreement(metric_units(reference, metric), metric_units(hypothesis, metric))


def token_agreement(a: list, b: list) -> float:
    """Matched items after alignment over the longer sequence (1.0 when both are empty)."""
    if not a and not b:
        return 1.0
    matched = sum(block.size for block in difflib.SequenceMatcher(None, a, b).get_matching_blocks())
    return matched / max(len(a), len(b))


def _faster_whisper_text(ct2_dir: str | Path, audio: np.ndarray, language: str) -> str:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(ct2_dir), device="cpu", local_files_only=True)
    segments, _ = model.transcribe(
        audio, language=language, beam_size=1, temperature=0.0, without_timestamps=True
    )
    return " ".join(s.text.strip() for s in segments)
