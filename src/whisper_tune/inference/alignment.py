"""Word times from cross-attention, as openai/whisper's ``timing.py`` finds them.

One decoder pass over a window's text tokens yields the cross-attention of the model's
alignment heads; normalised, median-filtered and aligned to the audio frames by dynamic time
warping, it gives each token a time. Tokens are grouped into words (at spaces, or at every
complete character for languages written without spaces), punctuation is merged into the
neighbouring word, and each word gets the mean probability of its tokens.
"""

from __future__ import annotations

import string
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from whisper_tune.inference.chunks import TIME_PRECISION
from whisper_tune.inference.types import Word

MEDIAN_FILTER_WIDTH = 7
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
UNICODE_SPLIT_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})

_eager_lock = threading.Lock()
_eager_users: dict[int, tuple[str, int]] = {}  # id(model) → (its own implementation, users)


@dataclass
class _Timing:
    word: str
    tokens: list[int]
    start: float
    end: float
    probability: float


def align_words(
    model,
    tokenizer,
    hidden,
    prompt: Sequence[int],
    pieces: Sequence[Sequence[int]],
    duration: float,
    language: str,
) -> list[list[Word]]:
    """The words of each piece of text tokens, times in seconds from the window start.

    ``hidden`` is the window's encoder output (frames × d_model), ``prompt`` the decoder
    prompt (start of transcript, language, task, no-timestamps) and ``duration`` the seconds
    of audio in the window; pieces are aligned together, in one decoder pass.
    """
    import torch
    from transformers.models.whisper.generation_whisper import (
        _dynamic_time_warping,
        _median_filter,
    )

    eot = model.generation_config.eos_token_id
    text = [[t for t in piece if t < eot] for piece in pieces]
    tokens = [t for piece in text for t in piece]
    if not tokens:
        return [[] for _ in pieces]
    ids = torch.tensor([[*prompt, *tokens, eot]], device=hidden.device)
    with torch.inference_mode(), _eager_attention(model):
        out = model(encoder_outputs=(hidden[None],), decoder_input_ids=ids, output_attentions=True)
    first = len(prompt) - 1  # the position whose output is the first text token
    probs = out.logits[0, first : first + len(tokens), :eot].float().softmax(-1)
    token_probs = probs[torch.arange(len(tokens)), torch.tensor(tokens)].tolist()

    frames = max(1, min(hidden.shape[0], round(duration / TIME_PRECISION)))
    weights = torch.stack([out.cross_attentions[layer][0, head] for layer, head in _heads(model)])
    weights = weights[:, :, :frames].float()
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = _median_filter((weights - mean) / std, MEDIAN_FILTER_WIDTH)
    matrix = weights.mean(dim=0)[first:-1]  # rows: the text tokens, then eot
    text_indices, time_indices = _dynamic_time_warping(-matrix.double().cpu().numpy())
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_times = time_indices[jumps] * TIME_PRECISION

    words, word_tokens = split_to_word_tokens(tokenizer, [*tokens, eot], eot, language)
    bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    timings = [
        _Timing(word, toks, float(jump_times[i]), float(jump_times[j]), float(np.mean(p)))
        for word, toks, i, j, p in zip(
            words[:-1],
            word_tokens[:-1],
            bounds[:-1],
            bounds[1:],
            (token_probs[i:j] for i, j in zip(bounds[:-1], bounds[1:], strict=True)),
            strict=True,
        )
    ]
    merge_punctuations(timings, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
    return _by_piece(timings, [len(piece) for piece in text])


def place_words(words: Sequence[Word], offset: float, start: float, end: float) -> tuple[Word, ...]:
    """``words`` moved ``offset`` seconds later and clipped into the segment [start, end]."""

    def time(seconds: float) -> float:
        return round(min(max(offset + seconds, start), end), 3)

    return tuple(Word(time(w.start), time(w.end), w.word, w.probability) for w in words)


def split_to_word_tokens(
    tokenizer, tokens: Sequence[int], eot: int, language: str
) -> tuple[list[str], list[list[int]]]:
    """Words and their tokens: split at spaces, or at every complete character for
    languages written without spaces (openai/whisper's ``split_to_word_tokens``)."""
    subwords, subword_tokens = _split_on_unicode(tokenizer, tokens)
    if language in UNICODE_SPLIT_LANGUAGES:
        return subwords, subword_tokens
    words: list[str] = []
    word_tokens: list[list[int]] = []
    for subword, toks in zip(subwords, subword_tokens, strict=True):
        starts_word = toks[0] >= eot or subword.startswith(" ")
        if starts_word or subword.strip() in string.punctuation or not words:
            words.append(subword)
            word_tokens.append(toks)
        else:
            words[-1] += subword
            word_tokens[-1].extend(toks)
    return words, word_tokens


def merge_punctuations(timings: list[_Timing], prepended: str, appended: str) -> None:
    """Join opening punctuation to the next word and closing punctuation to the previous
    one, in place; the merged-away entries keep no text and no tokens."""
    following = len(timings) - 1
    for i in range(len(timings) - 2, -1, -1):
        previous = timings[i]
        if previous.word.startswith(" ") and previous.word.strip() in prepended:
            _move(previous, timings[following], prepend=True)
        else:
            following = i
    previous_index = 0
    for j in range(1, len(timings)):
        previous, current = timings[previous_index], timings[j]
        if not previous.word.endswith(" ") and current.word in appended:
            _move(current, previous, prepend=False)
        else:
            previous_index = j


def _move(source: _Timing, target: _Timing, prepend: bool) -> None:
    if prepend:
        target.word, target.tokens = source.word + target.word, source.tokens + target.tokens
    else:
        target.word, target.tokens = target.word + source.word, target.tokens + source.tokens
    source.word, source.tokens = "", []


def _split_on_unicode(tokenizer, tokens: Sequence[int]) -> tuple[list[str], list[list[int]]]:
    """Split wherever the tokens so far decode to complete characters."""
    full = _decode(tokenizer, tokens)
    words: list[str] = []
    word_tokens: list[list[int]] = []
    current: list[int] = []
    offset = 0
    for token in tokens:
        current.append(token)
        decoded = _decode(tokenizer, current)
        bad = decoded.find("\ufffd")
        if bad < 0 or full[offset + bad : offset + bad + 1] == "\ufffd":
            words.append(decoded)
            word_tokens.append(current)
            current = []
            offset += len(decoded)
    return words, word_tokens


def _decode(tokenizer, tokens: Sequence[int]) -> str:
    return tokenizer.decode(list(tokens), clean_up_tokenization_spaces=False)


def _by_piece(timings: list[_Timing], lengths: list[int]) -> list[list[Word]]:
    """Hand the words out to the pieces their tokens came from (openai's bookkeeping)."""
    result: list[list[Word]] = []
    index = 0
    for length in lengths:
        words: list[Word] = []
        taken = 0
        while index < len(timings) and taken < length:
            timing = timings[index]
            if timing.word:
                words.append(Word(timing.start, timing.end, timing.word, timing.probability))
            taken += len(timing.tokens)
            index += 1
        result.append(words)
    return result


def _heads(model) -> list[tuple[int, int]]:
    """The generation config's alignment heads, else every head of the top half of the
    decoder layers (openai/whisper's default)."""
    heads = getattr(model.generation_config, "alignment_heads", None)
    if heads:
        return [(int(layer), int(head)) for layer, head in heads]
    layers, per_layer = model.config.decoder_layers, model.config.decoder_attention_heads
    return [(layer, head) for layer in range(layers // 2, layers) for head in range(per_layer)]


@contextmanager
def _eager_attention(model) -> Iterator[None]:
    """Eager attention for the block (SDPA returns no attention weights). The model's own
    implementation comes back when the last thread aligning with it is done; other threads
    decoding meanwhile get the same results, computed eagerly."""
    key = id(model)
    with _eager_lock:
        own, users = _eager_users.get(key, (model.config._attn_implementation, 0))
        if users == 0 and own != "eager":
            model.set_attn_implementation("eager")
        _eager_users[key] = (own, users + 1)
    try:
        yield
    finally:
        with _eager_lock:
            own, users = _eager_users.pop(key)
            if users > 1:
                _eager_users[key] = (own, users - 1)
            elif own != "eager":
                model.set_attn_implementation(own)
