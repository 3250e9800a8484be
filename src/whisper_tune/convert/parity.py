"""Parity check between a Hugging Face Whisper dir and a CTranslate2 Whisper dir.

Both models get the very same log-mel features (the Hugging Face feature extractor's: the
waveform padded to 30 s) and decode greedily with the same prompt; CTranslate2 runs in float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

FEATURES_NOTE = (
    "the same log-mel features for both (Hugging Face WhisperFeatureExtractor, waveform padded "
    "to 30 s), greedy decoding, CTranslate2 in float32"
)


def greedy_parity(
    hf_dir: str | Path, ct2_dir: str | Path, audio: np.ndarray, language: str | None = None
) -> dict[str, Any]:
    """Decode ``audio`` (16 kHz mono, at most 30 s) greedily with both models and compare.

    For a multilingual model each side also detects the language; both then decode in
    ``language`` (a code such as "zh") or, when it is None, in the one CTranslate2 detected,
    so that the texts compare like for like. English-only models ignore ``language``.
    """
    import ctranslate2
    import torch

    from whisper_tune.models import load_processor, load_whisper

    processor = load_processor(str(hf_dir), local_files_only=True)
    model = load_whisper(str(hf_dir), local_files_only=True, dtype=torch.float32).eval()
    features = processor.feature_extractor(
        audio, sampling_rate=16000, return_tensors="np"
    ).input_features.astype(np.float32)
    ct2 = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")
    storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(features))
    tensor = torch.from_numpy(features)

    with torch.no_grad():
        hf_encoded = model.model.encoder(tensor).last_hidden_state.numpy()
    encoder_diff = float(np.abs(np.array(ct2.encode(storage)) - hf_encoded).max())

    tokenizer = processor.tokenizer
    prompt = ["<|startoftranscript|>"]
    result: dict[str, Any] = {"features": FEATURES_NOTE, "encoder_max_abs_diff": encoder_diff}
    generate_kwargs: dict[str, Any] = {}
    if ct2.is_multilingual:
        ct2_language = ct2.detect_language(storage)[0][0][0]
        with torch.no_grad():
            hf_language_id = int(model.detect_language(tensor)[0])
        result["ct2_language"] = ct2_language
        result["hf_language"] = tokenizer.convert_ids_to_tokens(hf_language_id)
        decode_language = f"<|{language}|>" if language else ct2_language
        result["decode_language"] = decode_language
        prompt += [decode_language, "<|transcribe|>"]
        generate_kwargs = {"language": decode_language.strip("<|>"), "task": "transcribe"}
    prompt.append("<|notimestamps|>")

    ct2_ids = list(ct2.generate(storage, [prompt], beam_size=1)[0].sequences_ids[0])
    with torch.no_grad():
        hf_ids = model.generate(tensor, num_beams=1, do_sample=False, **generate_kwargs)[0]
    hf_ids = [int(t) for t in hf_ids if int(t) != model.generation_config.eos_token_id]
    ct2_text = tokenizer.decode(ct2_ids, skip_special_tokens=True).strip()
    hf_text = tokenizer.decode(hf_ids, skip_special_tokens=True).strip()
    result.update(
        ct2_text=ct2_text,
        hf_text=hf_text,
        same_tokens=ct2_ids == hf_ids,
        same_text=ct2_text == hf_text,
    )
    if ct2.is_multilingual:
        result["same_language"] = result["ct2_language"] == result["hf_language"]
    return result
