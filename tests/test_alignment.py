"""Word splitting and punctuation merging for the transformers engine's word timestamps."""

from __future__ import annotations

import pytest

from whisper_tune.inference.alignment import (
    APPEND_PUNCTUATIONS,
    PREPEND_PUNCTUATIONS,
    _Timing,
    merge_punctuations,
    place_words,
    split_to_word_tokens,
)
from whisper_tune.inference.types import Word
from whisper_tune.resolve import bundled_hf_dir


@pytest.fixture(scope="module")
def tokenizer():
    """The multilingual base model's own tokenizer."""
    from whisper_tune.models import load_processor

    return load_processor(str(bundled_hf_dir("base"))).tokenizer


def split(tokenizer, text: str, language: str) -> tuple[list[str], list[list[int]]]:
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    tokens = tokenizer.encode(text, add_special_tokens=False)
    words, word_tokens = split_to_word_tokens(tokenizer, [*tokens, eot], eot, language)
    assert words[-1] == "<|endoftext|>" and word_tokens[-1] == [eot]
    assert [t for group in word_tokens[:-1] for t in group] == tokens
    return words[:-1], word_tokens[:-1]


def test_chinese_splits_at_characters_english_at_spaces(tokenizer):
    text = "今天天气很好，龘我们去公园。"
    words, word_tokens = split(tokenizer, text, "zh")
    assert "".join(words) == text and all(1 <= len(w) <= 2 and " " not in w for w in words)
    # a character spelt with several byte tokens stays one word
    assert "龘" in words and len(word_tokens[words.index("龘")]) > 1
    assert len(words) >= 10

    words, _ = split(tokenizer, " Hello, world! Don't stop.", "en")
    assert words == [" Hello", ",", " world", "!", " Don't", " stop", "."]
    # without the language hint Chinese text is one word per space-separated run
    assert split(tokenizer, "今天 天气", "en")[0] == ["今天", " 天气"]


def test_punctuation_joins_its_word_and_words_clip_into_the_segment():
    timings = [
        _Timing(word, [i], float(i), float(i + 1), 0.9)
        for i, word in enumerate([' "', "Hello", ",", " world", ".", '"'])
    ]
    merge_punctuations(timings, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
    assert [(t.word, t.tokens) for t in timings] == [
        ("", []),
        (' "Hello,', [0, 1, 2]),
        ("", []),
        (' world."', [3, 4, 5]),
        ("", []),
        ("", []),
    ]
    words = [Word(0.0, 0.5, "a", 0.9), Word(0.5, 3.0, "b", 0.8)]
    assert place_words(words, 10.0, 10.2, 12.0) == (
        Word(10.2, 10.5, "a", 0.9),
        Word(10.5, 12.0, "b", 0.8),
    )
