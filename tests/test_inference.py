"""The Transcriber interface on the bundled tiny.en CTranslate2 model and espeak-ng speech."""

from __future__ import annotations

import shutil
import subprocess
import types

import numpy as np
import pytest

from whisper_tune.audio import SAMPLE_RATE, load_audio
from whisper_tune.errors import ModelError
from whisper_tune.inference import Segment, TranscribeOptions, load_transcriber
from whisper_tune.inference.guards import compression_ratio, guard_segments, has_loop
from whisper_tune.zoo import bundled_ct2_dir

SENTENCE = "The quick brown fox jumps over the lazy dog. It was a sunny morning in the city."


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed")
    path = tmp_path_factory.mktemp("speech") / "fox.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), SENTENCE], check=True)
    return load_audio(path)


@pytest.fixture(scope="module")
def ct2_tiny():
    return load_transcriber("tiny.en", use_int8=True)


def test_ct2_streams_segments_with_times(ct2_tiny, speech):
    segments, info = ct2_tiny.transcribe(speech, TranscribeOptions(beam_size=1))
    assert isinstance(segments, types.GeneratorType)  # lazy: decoded as consumed
    assert info.language == "en"
    assert info.duration == pytest.approx(len(speech) / SAMPLE_RATE)
    segments = list(segments)
    assert segments
    text = " ".join(s.text for s in segments).lower()
    assert "quick" in text and "sunny morning" in text
    for segment in segments:
        assert 0 <= segment.start < segment.end <= info.duration + 0.5


def test_ct2_batched_and_text_options(ct2_tiny, speech):
    options = TranscribeOptions(batch_size=4, remove_pun=True, word_timestamps=True)
    segments, _ = ct2_tiny.transcribe(speech, options)
    segments = list(segments)
    assert segments and all("." not in s.text and "," not in s.text for s in segments)
    words = [w for s in segments for w in s.words]
    assert words and all(a.start <= b.start for a, b in zip(words, words[1:], strict=False))


def test_ct2_silence_gives_no_text(ct2_tiny):
    segments, _ = ct2_tiny.transcribe(np.zeros(SAMPLE_RATE * 5, np.float32), TranscribeOptions())
    assert [s.text for s in segments] == []


def test_ct2_dir_missing_tokenizer(tmp_path):
    for name in ("model.bin", "config.json", "vocabulary.txt"):
        (tmp_path / name).symlink_to(bundled_ct2_dir("tiny.en") / name)
    with pytest.raises(ModelError, match="missing tokenizer.json"):
        load_transcriber(str(tmp_path), engine="ct2")


def test_guard_drops_silence_loops_and_repeats():
    speech = Segment(0, 2, "Hello there.", avg_logprob=-0.3, no_speech_prob=0.01)
    silence = Segment(2, 4, "You", avg_logprob=-0.94, no_speech_prob=0.94)
    loop = Segment(4, 6, "I think so. I think so. I think so. I think so.", avg_logprob=-0.2)
    squeezed = Segment(6, 8, "ab" * 40, compression_ratio=compression_ratio("ab" * 40))
    repeats = [Segment(8 + i, 9 + i, "Thank you.", avg_logprob=-0.2) for i in range(4)]
    kept = list(guard_segments([speech, silence, loop, squeezed, *repeats]))
    assert kept == [speech, *repeats[:2]]
    assert has_loop("这个这个这个这个") and not has_loop("我们今天去公园玩")
