"""The Transcriber interface: both engines on real tiny.en weights and synthetic speech."""

from __future__ import annotations

import types

import jiwer
import numpy as np
import pytest

from whisper_tune.audio import SAMPLE_RATE, load_audio
from whisper_tune.errors import ModelError
from whisper_tune.inference import Segment, TranscribeOptions, load_transcriber
from whisper_tune.inference.chunks import WINDOW_SAMPLES, quiet_windows, split_by_timestamps
from whisper_tune.inference.guards import (
    compression_ratio,
    guard_segments,
    has_loop,
    watch_timestamps,
)
from whisper_tune.inference.loader import choose_engine
from whisper_tune.resolve import bundled_hf_dir
from whisper_tune.text import normalize_english
from whisper_tune.zoo import bundled_ct2_dir


@pytest.fixture(scope="module")
def ct2_tiny():
    return load_transcriber("tiny.en", use_int8=True)


@pytest.fixture(scope="module")
def hf_tiny():
    """The transformers engine on one torch thread (two threads on the shared 2-core CI box
    are many times slower); the thread count is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    yield load_transcriber(str(bundled_hf_dir("tiny.en")), cpu_threads=1)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def long_audio(long_english_file):
    path, texts = long_english_file
    return load_audio(path), texts


def word_error_rate(segments: list[Segment], texts: list[str]) -> float:
    reference = normalize_english(" ".join(texts))
    return jiwer.wer(reference, normalize_english(" ".join(s.text for s in segments)))


def check_times(segments: list[Segment], duration: float) -> None:
    assert segments
    for segment in segments:
        assert 0 <= segment.start < segment.end <= duration + 0.5
    starts = [s.start for s in segments]
    assert starts == sorted(starts)


def test_ct2_streams_segments(ct2_tiny, english_clip):
    path, text = english_clip
    audio = load_audio(path)
    segments, info = ct2_tiny.transcribe(audio, TranscribeOptions(beam_size=1))
    assert isinstance(segments, types.GeneratorType)  # lazy: decoded as consumed
    assert ct2_tiny.engine == "ct2" and info.language == "en"
    assert info.duration == pytest.approx(len(audio) / SAMPLE_RATE)
    segments = list(segments)
    check_times(segments, info.duration)
    assert word_error_rate(segments, [text]) < 0.2


def test_ct2_batched_words_and_text_options(ct2_tiny, english_clip):
    options = TranscribeOptions(batch_size=4, remove_pun=True, word_timestamps=True)
    segments, _ = ct2_tiny.transcribe(load_audio(english_clip[0]), options)
    segments = list(segments)
    assert segments and all("." not in s.text and "," not in s.text for s in segments)
    words = [w for s in segments for w in s.words]
    assert len(words) >= 6 and all(
        a.start <= b.start for a, b in zip(words, words[1:], strict=False)
    )


def test_ct2_silence_gives_no_text(ct2_tiny, silence_clip):
    segments, _ = ct2_tiny.transcribe(load_audio(silence_clip), TranscribeOptions())
    assert list(segments) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        TranscribeOptions(beam_size=1),
        TranscribeOptions(beam_size=1, vad_filter=True),
        TranscribeOptions(beam_size=1, batch_size=4),
        TranscribeOptions(beam_size=1, batch_size=4, vad_filter=True),
    ],
    ids=["sequential", "vad", "batched", "batched-vad"],
)
def test_ct2_long_file(ct2_tiny, long_audio, options):
    audio, texts = long_audio
    assert len(audio) > 2 * 60 * SAMPLE_RATE
    segments, info = ct2_tiny.transcribe(audio, options)
    segments = list(segments)
    check_times(segments, info.duration)
    assert segments[-1].end > info.duration - 10
    assert word_error_rate(segments, texts) < 0.15


@pytest.mark.slow
def test_ct2_long_file_is_decoded_as_faster_whisper_decodes_it(ct2_tiny, long_audio):
    """In one piece: the same windows, prompts and segments as faster-whisper's own
    ``transcribe`` on the whole file (whose features are computed all at once)."""
    from faster_whisper import WhisperModel

    audio, _ = long_audio
    options = TranscribeOptions(beam_size=1, language="en")
    ours = list(ct2_tiny.transcribe(audio, options)[0])
    direct = WhisperModel(str(bundled_ct2_dir("tiny.en")), compute_type="int8")
    theirs = list(direct.transcribe(audio, language="en", beam_size=1)[0])
    assert [(s.start, s.end, s.text) for s in ours] == [
        (round(s.start, 3), round(min(s.end, len(audio) / SAMPLE_RATE), 3), s.text.strip())
        for s in theirs
    ]


def test_hf_engine_on_a_clip(hf_tiny, english_clip):
    path, text = english_clip
    segments, info = hf_tiny.transcribe(load_audio(path), TranscribeOptions(beam_size=2))
    assert isinstance(segments, types.GeneratorType)
    segments = list(segments)
    assert hf_tiny.engine == "transformers" and info.language == "en"
    check_times(segments, info.duration)
    assert word_error_rate(segments, [text]) < 0.2


@pytest.mark.parametrize("batch_size", [1, 2], ids=["seeking", "batched"])
def test_hf_word_timestamps_agree_with_ct2(hf_tiny, ct2_tiny, english_clip, batch_size):
    audio = load_audio(english_clip[0])
    options = TranscribeOptions(beam_size=1, word_timestamps=True, batch_size=batch_size)
    segments = list(hf_tiny.transcribe(audio, options)[0])
    check_times(segments, len(audio) / SAMPLE_RATE)
    for segment in segments:
        words = segment.words
        assert "".join(w.word for w in words).replace(" ", "") == segment.text.replace(" ", "")
        times = [t for w in words for t in (w.start, w.end)]
        assert times == sorted(times) and segment.start <= times[0] <= times[-1] <= segment.end
        assert all(0 < w.probability <= 1 for w in words)
    ours = {w.word.strip(): w.start for s in segments for w in s.words}
    reference = TranscribeOptions(beam_size=1, word_timestamps=True)
    ct2_words = [w for s in ct2_tiny.transcribe(audio, reference)[0] for w in s.words]
    gaps = [abs(ours[w.word.strip()] - w.start) for w in ct2_words if w.word.strip() in ours]
    assert len(gaps) >= 6
    # the same heads and algorithm give the same starts (0.00 s median and max measured);
    # words spread evenly over the segment would be 0.11 s off (median), all-zero ones 1.3 s
    assert np.median(gaps) < 0.05 and max(gaps) < 0.2


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [TranscribeOptions(beam_size=1), TranscribeOptions(beam_size=1, batch_size=3)],
    ids=["seeking", "batched"],
)
def test_hf_engine_long_audio(hf_tiny, long_audio, options):
    audio, texts = long_audio
    cut = 65 * SAMPLE_RATE  # three windows: seeking and batching both happen
    segments, info = hf_tiny.transcribe(audio[:cut], options)
    segments = list(segments)
    check_times(segments, info.duration)
    spoken = normalize_english(" ".join(texts))
    heard = normalize_english(" ".join(s.text for s in segments))
    assert len(heard.split()) > 100
    assert jiwer.wer(spoken[: len(heard) + 20], heard) < 0.2


def test_hf_assistant_gives_the_same_greedy_text(hf_tiny, tiny_whisper_en, english_clip):
    audio = load_audio(english_clip[0])
    options = TranscribeOptions(beam_size=1, temperature=0.0)
    plain = [s.text for s in hf_tiny.transcribe(audio, options)[0]]
    assisted_model = load_transcriber(
        str(bundled_hf_dir("tiny.en")), assistant_model_path=str(tiny_whisper_en)
    )
    assisted = [s.text for s in assisted_model.transcribe(audio, options)[0]]
    assert assisted == plain and plain


def test_engine_choice_and_model_errors(tmp_path, tiny_whisper_en):
    assert choose_engine(str(bundled_ct2_dir("tiny.en"))) == "ct2"
    assert choose_engine(str(tiny_whisper_en)) == "transformers"
    assert choose_engine("tiny.en") == "ct2"
    with pytest.raises(ModelError, match="Hugging Face model"):
        load_transcriber(str(tiny_whisper_en), engine="ct2")
    for name in ("model.bin", "config.json", "vocabulary.txt"):
        (tmp_path / name).symlink_to(bundled_ct2_dir("tiny.en") / name)
    with pytest.raises(ModelError, match="missing tokenizer.json"):
        load_transcriber(str(tmp_path))
    with pytest.raises(ModelError, match="neither"):
        choose_engine(str(tmp_path.parent))


def test_guard_drops_silence_loops_and_repeats():
    speech = Segment(0, 2, "Hello there.", avg_logprob=-0.3, no_speech_prob=0.01)
    silence = Segment(2, 4, "You", avg_logprob=-0.94, no_speech_prob=0.94)
    loop = Segment(4, 6, "I think so. I think so. I think so. I think so.", avg_logprob=-0.2)
    squeezed = Segment(6, 8, "ab" * 40, compression_ratio=compression_ratio("ab" * 40))
    repeats = [Segment(8 + i, 9 + i, "Thank you.", avg_logprob=-0.2) for i in range(4)]
    kept = list(guard_segments([speech, silence, loop, squeezed, *repeats]))
    assert kept == [speech, *repeats[:2]]
    assert has_loop("这个这个这个这个") and not has_loop("我们今天去公园玩")


def test_guard_off_keeps_what_the_guard_drops(ct2_tiny):
    zeros = np.zeros(5 * SAMPLE_RATE, np.float32)
    kept = list(ct2_tiny.transcribe(zeros, TranscribeOptions())[0])
    unguarded = TranscribeOptions(hallucination_guard=False)
    assert kept == [] and len(list(ct2_tiny.transcribe(zeros, unguarded)[0])) >= 1


def test_missing_timestamps_warning(caplog):
    begin = 50363
    with_times = [Segment(0, 1, "a", tokens=(begin, 10, begin + 50))]
    without = [Segment(0, 30, "a", tokens=(begin, 10, 11)), Segment(30, 60, "b", tokens=(12,))]
    with caplog.at_level("WARNING", logger="whisper_tune.inference"):
        assert list(watch_timestamps(with_times, begin)) == with_times
        assert not caplog.records
        assert list(watch_timestamps(without, begin)) == without
    assert "no timestamps for 2 of 2 segments" in caplog.text


def test_split_by_timestamps_and_quiet_cuts():
    b = 1000  # timestamp_begin: token b + n is n × 0.02 s
    pieces, done = split_by_timestamps([b, 1, 2, b + 50, b + 60, 3, b + 100], b)
    assert done and [(p.start, p.end) for p in pieces] == [(0.0, 1.0), (1.2, 2.0)]
    pieces, done = split_by_timestamps([b, 1, b + 50, b + 60, 3, 4], b)
    assert not done and pieces[-1].end is None and pieces[-1].start == 1.2
    audio = np.ones(75 * SAMPLE_RATE, np.float32)
    audio[int(27.3 * SAMPLE_RATE) : int(27.6 * SAMPLE_RATE)] = 0  # a pause inside the search zone
    windows = quiet_windows(audio)
    assert windows[0][0] == 0 and windows[-1][1] == len(audio)
    assert 27.3 * SAMPLE_RATE <= windows[0][1] <= 27.6 * SAMPLE_RATE
    assert all(end - start <= WINDOW_SAMPLES for start, end in windows)
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))
