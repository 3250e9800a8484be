"""Augmentation from the seed's JSON config: each effect, determinism, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whisper_tune.audio import write_wav
from whisper_tune.data.augment import load_augmenter
from whisper_tune.errors import WhisperTuneError


def config(tmp_path, steps) -> str:
    path = tmp_path / "augmentation.json"
    path.write_text(steps if isinstance(steps, str) else json.dumps(steps), encoding="utf-8")
    return str(path)


@pytest.fixture
def noise_dir(tmp_path):
    folder = tmp_path / "noise"
    folder.mkdir()
    write_wav(folder / "white.wav", np.random.default_rng(0).uniform(-0.2, 0.2, 4000))
    write_wav(folder / "hum.wav", 0.1 * np.sin(np.arange(24000) * 0.05))
    (folder / "readme.txt").write_text("not audio")
    return folder


def power_db(audio):
    return 10 * np.log10(np.mean(np.asarray(audio, dtype=np.float64) ** 2))


def test_seed_config_is_reproducible(tmp_path, noise_dir, tone):
    seed_config = [
        {
            "type": "noise",
            "params": {"min_snr_dB": 10, "max_snr_dB": 50, "noise_dir": str(noise_dir)},
            "prob": 1.0,
        },
        {"type": "resample", "params": {"new_sample_rates": [8000, 32000, 44100]}, "prob": 1.0},
        {
            "type": "speed",
            "params": {"min_speed_rate": 0.9, "max_speed_rate": 1.1, "num_rates": 3},
            "prob": 1.0,
        },
        {"type": "shift", "params": {"min_shift_ms": -5, "max_shift_ms": 5}, "prob": 1.0},
        {"type": "volume", "params": {"min_gain_dBFS": -15, "max_gain_dBFS": 15}, "prob": 1.0},
    ]
    augment = load_augmenter(config(tmp_path, seed_config))
    audio = tone(1.0)
    first = augment(audio, np.random.default_rng(7))
    again = augment(audio, np.random.default_rng(7))
    other = augment(audio, np.random.default_rng(8))
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert len(first) != len(other) or not np.array_equal(first, other)
    assert np.array_equal(audio, tone(1.0))  # the input is left alone
    lengths = {len(augment(audio, np.random.default_rng(s))) for s in range(20)}
    speeds = [16000 / 0.9, 16000, 16000 / 1.1]  # num_rates 3: one of three speeds
    assert all(min(abs(n - s) for s in speeds) <= 2 for n in lengths), lengths
    assert len(lengths) > 1


def test_each_effect(tmp_path, noise_dir, tone):
    audio, rng = tone(1.0, 440), np.random.default_rng(0)

    def only(kind, params, prob=1.0):
        return load_augmenter(config(tmp_path, [{"type": kind, "params": params, "prob": prob}]))

    louder = only("volume", {"min_gain_dBFS": 6, "max_gain_dBFS": 6})(audio, rng)
    np.testing.assert_allclose(louder, audio * 10 ** (6 / 20), rtol=1e-6)
    faster = only("speed", {"min_speed_rate": 1.25, "max_speed_rate": 1.25, "num_rates": 1})
    assert len(faster(audio, rng)) == 12800
    shifted = only("shift", {"min_shift_ms": 10, "max_shift_ms": 10})(audio, rng)
    np.testing.assert_array_equal(shifted[:-160], audio[160:])
    assert not shifted[-160:].any()
    high = tone(1.0, 6000)
    narrow = only("resample", {"new_sample_rates": [8000]})(high, rng)
    assert power_db(narrow) < power_db(high) - 30  # 8 kHz removes everything above 4 kHz

    noisy = only("noise", {"noise_dir": str(noise_dir), "min_snr_dB": 10, "max_snr_dB": 10})
    for seed in range(4):
        out = noisy(audio, np.random.default_rng(seed))
        assert power_db(audio) - power_db(out - audio) == pytest.approx(10, abs=0.05)
    hiss = noisy(np.zeros(8000, np.float32), rng)  # no-speech clips get noise too
    assert power_db(hiss) == pytest.approx(-40, abs=0.05)

    never = only("volume", {"min_gain_dBFS": -20, "max_gain_dBFS": 20}, prob=0.0)
    np.testing.assert_array_equal(never(audio, rng), audio)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"type": "reverb", "params": {}}], "unknown augmentation type 'reverb'"),
        (
            [{"type": "speed", "params": {"min_speed_rate": 1.2, "max_speed_rate": 1.1}}],
            "item 0 \\(speed\\): min_speed_rate 1.2 is above max_speed_rate 1.1",
        ),
        (
            [{"type": "volume", "params": {"min_gain_dBFS": -3}}, {"type": "shift", "prob": 2}],
            "item 1 \\(shift\\): prob must be within 0..1",
        ),
        (
            [{"type": "speed", "params": {"min_speed_rate": 0, "max_speed_rate": 1}}],
            "speed rates must be above 0",
        ),
        ([{"type": "volume", "params": {"min_gain_db": -3}}], "unknown param\\(s\\) min_gain_db"),
        (
            [{"type": "resample", "params": {"new_sample_rates": [8000, "16k"]}}],
            "sample rate '16k'",
        ),
        ([{"type": "noise", "params": {"noise_dir": "no/such/folder"}}], "noise_dir not found"),
        ([{"type": "noise", "params": {}}], "needs 'noise_dir'"),
        ({"type": "speed"}, "expected a JSON list"),
        ('[{"type": "speed",}]', "augmentation.json:1: not valid JSON"),
    ],
)
def test_bad_configs_are_named(tmp_path, steps, message):
    with pytest.raises(WhisperTuneError, match=message):
        load_augmenter(config(tmp_path, steps))


def test_empty_noise_folder_and_missing_config(tmp_path):
    (tmp_path / "quiet").mkdir()
    (tmp_path / "quiet" / "notes.txt").write_text("x")
    steps = [{"type": "noise", "params": {"noise_dir": str(tmp_path / "quiet")}}]
    with pytest.raises(WhisperTuneError, match="holds no audio files"):
        load_augmenter(config(tmp_path, steps))
    with pytest.raises(WhisperTuneError, match="augmentation config not found"):
        load_augmenter(tmp_path / "missing.json")
