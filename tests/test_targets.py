"""Decoder targets: prompt, text, timestamps, no-speech; and the text normalisers."""

from __future__ import annotations

import pytest
from transformers import WhisperProcessor

from whisper_tune.data.manifest import TimedText, Utterance
from whisper_tune.data.targets import IGNORE, TargetBuilder
from whisper_tune.text import TextOptions, normalize_english


@pytest.fixture(scope="module")
def builders(tiny_whisper_en, tiny_whisper_multi):
    en = WhisperProcessor.from_pretrained(tiny_whisper_en).tokenizer
    multi = WhisperProcessor.from_pretrained(tiny_whisper_multi).tokenizer
    return TargetBuilder(en, None), TargetBuilder(multi, "zh")


def test_plain_target_shifts_by_one(builders):
    en, _ = builders
    target = en.build(Utterance("a.wav", "hello world"), timestamps=False, audio_seconds=2.0)
    tokens = en.tokenizer.convert_ids_to_tokens(target.decoder_input_ids)
    assert tokens[:2] == ["<|startoftranscript|>", "<|notimestamps|>"]
    assert target.labels[:-1] == target.decoder_input_ids[1:]
    assert target.labels[-1] == en.special.eot
    assert en.tokenizer.decode(target.labels, skip_special_tokens=True) == " hello world"


def test_multilingual_prompt_and_timestamps(builders):
    _, zh = builders
    utterance = Utterance(
        "a.wav",
        "近几年，不但我用书",
        sentences=(TimedText(0.0, 1.4, "近几年，"), TimedText(1.42, 3.0, "不但我用书")),
    )
    target = zh.build(utterance, timestamps=True, audio_seconds=3.0)
    tokens = zh.tokenizer.convert_ids_to_tokens(target.decoder_input_ids + target.labels[-1:])
    assert tokens[:3] == ["<|startoftranscript|>", "<|zh|>", "<|transcribe|>"]
    assert "<|notimestamps|>" not in tokens
    stamps = [t for t in tokens if t.startswith("<|") and t[2].isdigit()]
    assert stamps == ["<|0.00|>", "<|1.40|>", "<|1.42|>", "<|3.00|>"]


def test_no_speech_target_teaches_the_no_speech_token_and_empty_text(builders):
    for builder in builders:
        target = builder.build(Utterance("a.wav", ""), timestamps=True, audio_seconds=2.0)
        assert target.labels[0] == builder.special.no_speech
        assert target.labels[-1] == builder.special.eot
        assert target.decoder_input_ids[-1] == builder.special.no_timestamps


def test_english_normaliser_and_chinese_options():
    assert normalize_english("Doctor Smith bought twenty apples.") == normalize_english(
        "Dr. Smith bought 20 apples"
    )
    options = TextOptions(remove_pun=True, to_simple=True)
    assert options.apply("近幾年，不但我用書給女兒壓歲。") == "近几年不但我用书给女儿压岁"


def test_without_language_id_the_language_token_is_context_only(builders):
    _, zh = builders
    quiet = TargetBuilder(zh.tokenizer, "zh", language_id=False)
    utterance = Utterance("a.wav", "近几年")
    for previous in (None, "上一句"):
        trained = zh.build(utterance, False, 2.0, previous_text=previous)
        context = quiet.build(utterance, False, 2.0, previous_text=previous)
        assert context.decoder_input_ids == trained.decoder_input_ids
        at = trained.decoder_input_ids.index(zh.special.sot)
        assert zh.tokenizer.convert_ids_to_tokens(trained.labels[at]) == "<|zh|>"
        assert context.labels[at] == IGNORE
        assert context.labels[at + 1 :] == trained.labels[at + 1 :]
    silent = quiet.build(Utterance("a.wav", ""), False, 2.0)
    assert silent.labels[0] == quiet.special.no_speech  # no-speech training is untouched
