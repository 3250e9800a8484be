"""Dynamic audio context (issue 24): a marked model's short clips reach the encoder at their own
length in every engine; a stock model keeps 30 s windows. Shapes are checked, not the clock."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from whisper_tune import zoo
from whisper_tune.audio_context import (
    FULL,
    ContextRule,
    context_rule,
    frames_of,
    read_marker,
    write_marker,
)
from whisper_tune.errors import WhisperTuneError
from whisper_tune.inference import TranscribeOptions, load_transcriber
from whisper_tune.inference.chunks import group_by_context

SECOND = 16000


def test_context_is_the_clip_rounded_up_to_whole_seconds_with_a_floor():
    rule = ContextRule()
    assert rule.positions(101) == 100  # 1 s: the 2 s floor
    assert rule.positions(293) == 150  # 2.9 s → 3 s
    assert rule.positions(1001) == 550
    assert rule.positions(3000) == 1500 and rule.frames(5000) == 3000
    assert FULL.positions(101) == 1500


def test_audio_ctx_values_and_the_warning_for_a_stock_model(caplog):
    trained = ContextRule()
    assert context_rule("auto", None) == FULL  # stock: 30 s windows
    assert context_rule("auto", trained) == trained
    assert context_rule("full", trained) == FULL
    with caplog.at_level(logging.WARNING):
        assert context_rule("300", None).floor == 300
    assert "not fine-tuned for a short audio context" in caplog.text
    assert "18 % WER" in caplog.text
    for bad in ("0", "1501", "half", "-3"):
        with pytest.raises(WhisperTuneError, match="--audio_ctx"):
            context_rule(bad, trained)


def test_clips_are_grouped_by_similar_length():
    rule = ContextRule()
    lengths = [25 * SECOND, 1 * SECOND, 24 * SECOND, 2 * SECOND]
    assert group_by_context(lengths, rule) == [[1, 3], [2, 0]]
    assert group_by_context(lengths, FULL) == [[1, 3, 2, 0]]


@pytest.fixture(scope="module")
def marked_tiny_en(tmp_path_factory):
    """The bundled tiny.en CTranslate2 model (its files linked) with the marker written."""
    source = zoo.bundled_ct2_dir("tiny.en")
    target = tmp_path_factory.mktemp("marked") / "tiny.en-ctx"
    target.mkdir()
    for item in source.iterdir():
        os.symlink(item.resolve(), target / item.name)
    write_marker(target)
    return target


def _spy_ct2_encoder(transcriber) -> list[tuple[int, ...]]:
    """Record the shape of every CTranslate2 encoder output (batch, positions, width)."""
    shapes: list[tuple[int, ...]] = []
    encode = transcriber.model.encode

    def spy(features):
        output = encode(features)
        shapes.append(tuple(output.shape))
        return output

    transcriber.model.encode = spy
    return shapes


def _clip(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.05 * rng.standard_normal(int(seconds * SECOND))).astype(np.float32)


def test_ct2_encodes_a_marked_models_short_clip_at_its_own_length(marked_tiny_en):
    transcriber = load_transcriber(str(marked_tiny_en))
    shapes = _spy_ct2_encoder(transcriber)
    options = TranscribeOptions(language="en", temperature=0.0, beam_size=1)
    list(transcriber.transcribe(_clip(2.9), options)[0])
    assert {shape[1] for shape in shapes} == {150}
    shapes.clear()
    # long audio: 30 s windows, then the last partial one at its length
    list(transcriber.transcribe(_clip(33.0), options)[0])
    assert shapes[0][1] == 1500 and shapes[-1][1] < 1500
    shapes.clear()
    results = transcriber.transcribe_batch([_clip(1.0), _clip(20.0), _clip(1.5)], options)
    assert len(results) == 3
    assert {(2, 100), (1, 1000)} <= {shape[:2] for shape in shapes}  # two groups
    shapes.clear()
    full = load_transcriber(str(marked_tiny_en), audio_ctx="full")
    shapes = _spy_ct2_encoder(full)
    list(full.transcribe(_clip(2.9), options)[0])
    assert {shape[1] for shape in shapes} == {1500}


@pytest.mark.parametrize("unsure", [False, True])
def test_ct2_decodes_an_unsure_short_clip_again_in_a_full_window(
    marked_tiny_en, monkeypatch, unsure
):
    """A short clip is decoded at its own length at temperature 0; only when that text fails
    the thresholds is it decoded again in a 30 s window with the temperature fallback (the
    same text as the model run with full windows), never sampled on the short context."""
    from whisper_tune.inference.policy import DecodingPolicy
    from whisper_tune.synth import synthesize

    speech = synthesize("the blue kettle is on the stove", "en", seed=1)
    options = TranscribeOptions(language="en", beam_size=1)  # the default fallback schedule
    full = load_transcriber(str(marked_tiny_en), audio_ctx="full")
    expected = [s.text for s in full.transcribe(speech, options)[0]]
    transcriber = load_transcriber(str(marked_tiny_en))
    shapes = _spy_ct2_encoder(transcriber)
    checked = []
    monkeypatch.setattr(
        DecodingPolicy, "fails", lambda self, *scores: checked.append(scores) or unsure
    )
    texts = [s.text for s in transcriber.transcribe(speech, options)[0]]
    assert checked and shapes[0][1] == 150  # the clip's own length came first
    if unsure:
        assert {shape[1] for shape in shapes[1:]} == {1500} and texts == expected
    else:
        assert {shape[1] for shape in shapes} == {150} and texts


@pytest.fixture(scope="module")
def marked_tiny_en_ggml(tmp_path_factory):
    """Bundled tiny.en exported for whisper.cpp (f16), marked for dynamic audio context."""
    pytest.importorskip("pywhispercpp", reason="the ggml extra is not installed")
    from whisper_tune.convert.ggml import export_ggml

    ggml = tmp_path_factory.mktemp("marked-ggml") / "ggml-tiny.en.bin"
    export_ggml("tiny.en", ggml, local_files_only=True)
    write_marker(ggml)
    return ggml


@pytest.mark.slow
@pytest.mark.parametrize("unsure", [False, True])
def test_whisper_cpp_decodes_an_unsure_short_clip_again_in_a_full_window(
    marked_tiny_en_ggml, monkeypatch, unsure
):
    """whisper.cpp gets the clip's own context (-ac) at temperature 0 with no fallback; only
    when that text fails the thresholds is it decoded again at 30 s with the fallback."""
    from whisper_tune.inference.policy import DecodingPolicy
    from whisper_tune.synth import synthesize

    speech = synthesize("the blue kettle is on the stove", "en", seed=1)
    own = ContextRule().positions(frames_of(len(speech)))
    options = TranscribeOptions(language="en", beam_size=1)  # the default fallback schedule
    full = load_transcriber(str(marked_tiny_en_ggml), audio_ctx="full")
    expected = [s.text for s in full.transcribe(speech, options)[0]]
    transcriber = load_transcriber(str(marked_tiny_en_ggml))
    calls = []
    run = transcriber.model.transcribe

    def spy(audio, **params):
        calls.append((params["audio_ctx"], params["temperature_inc"]))
        return run(audio, **params)

    transcriber.model.transcribe = spy
    checked = []
    monkeypatch.setattr(
        DecodingPolicy, "fails", lambda self, *scores: checked.append(scores) or unsure
    )
    texts = [s.text for s in transcriber.transcribe(speech, options)[0]]
    assert own < 1500 and checked and calls[0] == (own, 0.0)  # own length, no fallback
    if unsure:
        assert calls[1:] == [(0, 0.2)] and texts == expected
    else:
        assert calls == [(own, 0.0)] and texts


def test_ct2_keeps_30_s_for_a_stock_model_unless_told_with_a_warning(caplog):
    options = TranscribeOptions(language="en", temperature=0.0, beam_size=1)
    stock = load_transcriber("tiny.en")
    shapes = _spy_ct2_encoder(stock)
    list(stock.transcribe(_clip(2.9), options)[0])
    assert {shape[1] for shape in shapes} == {1500}
    with caplog.at_level(logging.WARNING):
        short = load_transcriber("tiny.en", audio_ctx="400")
    assert "not fine-tuned for a short audio context" in caplog.text
    shapes = _spy_ct2_encoder(short)
    list(short.transcribe(_clip(2.9), options)[0])
    assert {shape[1] for shape in shapes} == {400}


def test_transformers_engine_encodes_a_marked_model_at_the_clip_length(
    tiny_whisper_multi, tmp_path
):
    import shutil

    marked = shutil.copytree(tiny_whisper_multi, tmp_path / "marked")
    write_marker(marked)
    assert read_marker(marked) == ContextRule() and read_marker(tiny_whisper_multi) is None
    for model, frames in ((tiny_whisper_multi, 3000), (marked, 300)):
        transcriber = load_transcriber(str(model))
        hidden = []
        encode = transcriber._encode

        def spy(features, encode=encode, hidden=hidden):
            hidden.append(tuple(features.shape))
            return encode(features)

        transcriber._encode = spy
        transcriber.detect_language(_clip(2.9))
        transcriber.model.generation_config.max_new_tokens = 3  # a random model never stops
        options = TranscribeOptions(language="en", beam_size=1, temperature=0.0, timestamps=False)
        assert list(transcriber.transcribe(_clip(2.9), options)[0])  # decoded from that encoding
        assert {shape[-1] for shape in hidden} == {frames}


def test_transformers_engine_decodes_an_unsure_short_window_again_at_30_s(
    tiny_whisper_multi, tmp_path, monkeypatch
):
    """Text failing at the first temperature on the clip's own context is decoded again at
    that temperature in a 30 s window, then hotter there; never hotter on the short one."""
    import shutil

    from whisper_tune.inference import hf

    marked = shutil.copytree(tiny_whisper_multi, tmp_path / "marked")
    write_marker(marked)
    transcriber = load_transcriber(str(marked))
    transcriber.model.generation_config.max_new_tokens = 3
    encoded, generated = [], []
    encode, generate = transcriber._encode, transcriber.model.generate

    def spy_encode(features):
        encoded.append(features.shape[-1])
        return encode(features)

    def spy_generate(**kwargs):
        generated.append((encoded[-1], kwargs.get("temperature", 0.0)))
        return generate(**kwargs)

    transcriber._encode = spy_encode
    monkeypatch.setattr(transcriber.model, "generate", spy_generate)
    monkeypatch.setattr(hf._Decoded, "needs_fallback", lambda self, policy: True)
    options = TranscribeOptions(language="en", beam_size=1, timestamps=False)
    list(transcriber.transcribe(_clip(2.9), options)[0])
    temperatures = options.policy().temperature
    assert encoded == [300, 3000]
    assert generated == [(300, 0.0)] + [(3000, t) for t in temperatures]


def test_audio_ctx_is_one_option_of_transcribe_evaluate_serve_and_gui():
    from whisper_tune.cli import build_parser

    parser = build_parser()
    for command in ("transcribe", "evaluate", "serve", "gui"):
        action = next(a for a in parser._actions if a.dest == "command")
        flags = {f for a in action.choices[command]._actions for f in a.option_strings}
        assert {"--audio_ctx", "--audio-ctx"} <= flags, command
