"""The non-weight parts of a Hugging Face Whisper checkpoint, built offline.

A CTranslate2 Whisper directory carries ``tokenizer.json`` (without the timestamp tokens) and a
``config.json`` with suppress tokens, alignment heads and language ids. From those this module
builds the ``WhisperProcessor`` and the ``GenerationConfig`` a ``WhisperForConditionalGeneration``
needs, with no hub access.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whisper_tune.errors import ModelError

N_TIMESTAMPS = 1501  # <|0.00|> … <|30.00|> in steps of 0.02 s
MULTILINGUAL_MIN_VOCAB = 51865  # OpenAI's rule: English-only models have 51864 tokens
MAX_INITIAL_TIMESTAMP_INDEX = 50  # the first timestamp may be at most 1.0 s, as in OpenAI's decoder
_LANGUAGE_TOKEN = re.compile(r"^<\|[a-z]{2,3}\|>$")
_REQUIRED_SPECIAL = (
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startofprev|>",
    "<|notimestamps|>",
)


@dataclass(frozen=True)
class WhisperDims:
    """The sizes that define a Whisper architecture (OpenAI calls them ModelDimensions)."""

    n_mels: int
    n_vocab: int
    d_model: int
    encoder_layers: int
    encoder_heads: int
    decoder_layers: int
    decoder_heads: int
    ffn_dim: int
    n_audio_ctx: int = 1500
    n_text_ctx: int = 448


def tokenizer_json_path(source: str | Path) -> Path:
    """``source`` itself if it is a ``tokenizer.json``, else ``source/tokenizer.json``."""
    path = Path(source)
    candidate = path / "tokenizer.json" if path.is_dir() else path
    if not candidate.is_file():
        raise ModelError(f"no tokenizer.json in {path}; a Whisper tokenizer file is needed")
    return candidate


def build_tokenizer(source: str | Path):
    """A ``WhisperTokenizer`` from a CTranslate2 dir's ``tokenizer.json``, with the 1501
    timestamp tokens appended (the HF Whisper vocabulary: 51864 tokens for English-only models,
    51865 or more for multilingual ones)."""
    from transformers import AddedToken, WhisperTokenizer

    path = tokenizer_json_path(source)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        added = content["added_tokens"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path} is not a tokenizers JSON file: {exc}") from None
    specials = [t["content"] for t in added if t.get("special") and not _is_timestamp(t)]
    missing = [token for token in _REQUIRED_SPECIAL if token not in specials]
    if missing:
        raise ModelError(f"{path} is not a Whisper tokenizer: missing {', '.join(missing)}")
    tokenizer = WhisperTokenizer(
        tokenizer_file=str(path),
        extra_special_tokens=specials,
        pad_token="<|endoftext|>",
        model_max_length=448,
    )
    tokenizer.add_tokens(
        [
            AddedToken(f"<|{i * 0.02:.2f}|>", lstrip=False, rstrip=False, normalized=False)
            for i in range(N_TIMESTAMPS)
        ]
    )
    first = tokenizer.convert_tokens_to_ids("<|0.00|>")
    if first != tokenizer.convert_tokens_to_ids("<|notimestamps|>") + 1:
        raise ModelError(f"{path}: timestamp tokens do not follow <|notimestamps|> (id {first})")
    return tokenizer


def _is_timestamp(token: Mapping[str, Any]) -> bool:
    return bool(re.fullmatch(r"<\|\d+\.\d\d\|>", str(token.get("content", ""))))


def build_processor(source: str | Path, num_mel_bins: int = 80):
    """A ``WhisperProcessor`` (feature extractor + tokenizer) from a CTranslate2 directory or
    its ``tokenizer.json``; ``num_mel_bins`` is 80, or 128 for large-v3."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor

    feature_extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
    return WhisperProcessor(feature_extractor=feature_extractor, tokenizer=build_tokenizer(source))


def read_ct2_config(ct2_dir: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a CTranslate2 directory (empty when there is none)."""
    path = Path(ct2_dir) / "config.json"
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path} must hold a JSON object")
    return config


def build_generation_config(
    tokenizer,
    ct2_config: Mapping[str, Any],
    decoder_layers: int,
    decoder_heads: int,
    max_length: int = 448,
):
    """Whisper's ``GenerationConfig``: special token ids from the tokenizer; suppress tokens,
    alignment heads and language ids from the CTranslate2 ``config.json`` (the fields
    CTranslate2's converter writes from a HF generation config)."""
    from transformers import GenerationConfig

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _REQUIRED_SPECIAL}
    eot = ids["<|endoftext|>"]
    multilingual = len(tokenizer) >= MULTILINGUAL_MIN_VOCAB
    alignment_heads = ct2_config.get("alignment_heads") or [
        [layer, head]
        for layer in range(decoder_layers // 2, decoder_layers)
        for head in range(decoder_heads)
    ]
    fields: dict[str, Any] = {
        "decoder_start_token_id": ids["<|startoftranscript|>"],
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "max_length": max_length,
        "no_timestamps_token_id": ids["<|notimestamps|>"],
        "prev_sot_token_id": ids["<|startofprev|>"],
        "max_initial_timestamp_index": MAX_INITIAL_TIMESTAMP_INDEX,
        "return_timestamps": False,
        "is_multilingual": multilingual,
        "suppress_tokens": list(ct2_config.get("suppress_ids") or []),
        "begin_suppress_tokens": list(ct2_config.get("suppress_ids_begin") or [220, eot]),
        "alignment_heads": [list(pair) for pair in alignment_heads],
    }
    if multilingual:
        fields["lang_to_id"] = _language_ids(tokenizer, ct2_config.get("lang_ids"))
        fields["task_to_id"] = {
            "transcribe": ids["<|transcribe|>"],
            "translate": ids["<|translate|>"],
        }
    return GenerationConfig(**fields)


def _language_ids(tokenizer, lang_ids: list[int] | None) -> dict[str, int]:
    """``{"<|en|>": 50259, …}`` for the ids CTranslate2 lists, else every language token
    between ``<|startoftranscript|>`` and ``<|translate|>``."""
    if not lang_ids:
        start = tokenizer.convert_tokens_to_ids("<|startoftranscript|>") + 1
        lang_ids = list(range(start, tokenizer.convert_tokens_to_ids("<|translate|>")))
    tokens = tokenizer.convert_ids_to_tokens(list(lang_ids))
    bad = [token for token in tokens if not token or not _LANGUAGE_TOKEN.match(token)]
    if bad:
        raise ModelError(f"language ids of the model name tokens that are not languages: {bad[:5]}")
    return dict(zip(tokens, lang_ids, strict=True))


def build_whisper_config(dims: WhisperDims, generation):
    """The ``WhisperConfig`` for ``dims``, with token ids taken from the generation config."""
    from transformers import WhisperConfig

    return WhisperConfig(
        vocab_size=dims.n_vocab,
        num_mel_bins=dims.n_mels,
        d_model=dims.d_model,
        encoder_layers=dims.encoder_layers,
        encoder_attention_heads=dims.encoder_heads,
        decoder_layers=dims.decoder_layers,
        decoder_attention_heads=dims.decoder_heads,
        encoder_ffn_dim=dims.ffn_dim,
        decoder_ffn_dim=dims.ffn_dim,
        max_source_positions=dims.n_audio_ctx,
        max_target_positions=dims.n_text_ctx,
        decoder_start_token_id=generation.decoder_start_token_id,
        bos_token_id=generation.bos_token_id,
        eos_token_id=generation.eos_token_id,
        pad_token_id=generation.pad_token_id,
        suppress_tokens=generation.suppress_tokens,
        begin_suppress_tokens=generation.begin_suppress_tokens,
        tie_word_embeddings=True,
    )


def build_whisper_parts(
    tokenizer_source: str | Path, ct2_config: Mapping[str, Any], dims: WhisperDims
):
    """``(WhisperConfig, GenerationConfig, WhisperProcessor)`` for a model of size ``dims``
    whose tokenizer is ``tokenizer_source`` (a CTranslate2 dir or its ``tokenizer.json``)."""
    processor = build_processor(tokenizer_source, num_mel_bins=dims.n_mels)
    if len(processor.tokenizer) != dims.n_vocab:
        raise ModelError(
            f"the tokenizer of {tokenizer_source} has {len(processor.tokenizer)} tokens with "
            f"timestamps, the model's embedding has {dims.n_vocab}"
        )
    generation = build_generation_config(
        processor.tokenizer, ct2_config, dims.decoder_layers, dims.decoder_heads, dims.n_text_ctx
    )
    return build_whisper_config(dims, generation), generation, processor
