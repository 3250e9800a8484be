"""The sliced log-mel features: faster-whisper's features, without its whole-input spectrum."""

import tracemalloc

import numpy as np
import pytest
from faster_whisper.feature_extractor import FeatureExtractor

from whisper_tune.audio import SAMPLE_RATE
from whisper_tune.inference.ct2_features import SLICE_FRAMES, SlicedFeatureExtractor


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise with a quiet first third (the dynamic-range floor comes from the loud part)."""
    audio = np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE)) * 0.1
    audio[: len(audio) // 3] *= 1e-3
    return audio.astype(np.float32)


@pytest.mark.parametrize(
    "seconds", [0.5, 3.01, 30.0, 95.3], ids=["tiny", "short", "window", "long"]
)
@pytest.mark.parametrize("feature_size", [80, 128])
def test_the_same_features_as_faster_whisper(seconds, feature_size):
    audio = _speechlike(seconds)
    expected = FeatureExtractor(feature_size=feature_size)(audio)
    got = SlicedFeatureExtractor(feature_size=feature_size)(audio)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert seconds < 30 or got.shape[1] > SLICE_FRAMES  # the long inputs span several slices
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_the_window_length_and_padding_arguments_are_kept():
    audio = _speechlike(4.0)
    expected_extractor, extractor = FeatureExtractor(), SlicedFeatureExtractor()
    expected = expected_extractor(audio, padding=0, chunk_length=10)
    got = extractor(audio, padding=0, chunk_length=10)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert extractor.nb_max_frames == expected_extractor.nb_max_frames == 1000


def test_five_minutes_need_a_fraction_of_the_memory():
    audio = _speechlike(300.0)
    peaks = []
    for extractor in (FeatureExtractor(), SlicedFeatureExtractor()):
        tracemalloc.start()
        extractor(audio)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    whole, sliced = peaks
    assert sliced < whole / 3, (whole, sliced)
