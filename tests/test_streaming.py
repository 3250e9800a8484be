"""Live transcription (LocalAgreement-2): the policy on scripted hypotheses, then tiny.en."""

from __future__ import annotations

import jiwer
import numpy as np
import pytest

from whisper_tune.audio import SAMPLE_RATE, load_audio
from whisper_tune.errors import WhisperTuneError
from whisper_tune.inference import Segment, TranscribeOptions, TranscriptionInfo, Word
from whisper_tune.inference.streaming import StreamingSettings, StreamingTranscriber
from whisper_tune.text import normalize_english

NO_VAD = StreamingSettings(vad=False, min_chunk_seconds=1.0, trim_seconds=4.0)


class ScriptedTranscriber:
    """Hypotheses by buffer length: 1 s of audio hears the script's words that end within it,
    except that the last word heard is misrecognised (``hyp`` instead of the word) until more
    audio follows it. Records each prompt and buffer length it was given."""

    engine = "scripted"

    def __init__(self, script: list[tuple[float, float, str]]) -> None:
        self.script = script
        self.calls: list[tuple[float, str | None]] = []
        self.offset = 0.0  # stream time of the buffer's start, set by the test's spy

    def transcribe(self, audio, options):
        seconds = len(audio) / SAMPLE_RATE
        self.calls.append((seconds, options.initial_prompt))
        words = []
        for start, end, text in self.script:
            start, end = start - self.offset, end - self.offset
            if start < 0 or end > seconds:
                continue
            heard = text if seconds - end > 0.5 else "hyp"
            words.append(Word(start, end, heard, 1.0))
        segments = [Segment(w.start, w.end, w.word, (w,)) for w in words]
        return iter(segments), TranscriptionInfo("en", 1.0, seconds)


def feed(stream: StreamingTranscriber, audio: np.ndarray, step: float = 0.25):
    updates = []
    for i in range(0, len(audio), int(step * SAMPLE_RATE)):
        updates += stream.process(audio[i : i + int(step * SAMPLE_RATE)])
    return updates


def tracking_offset(stream: StreamingTranscriber, scripted: ScriptedTranscriber) -> None:
    """Tell the scripted model where the stream's buffer starts before each decode."""
    decode = stream._decode

    def spy(upto):
        scripted.offset = stream._offset
        return decode(upto)

    stream._decode = spy


def test_commits_only_what_two_hypotheses_agree_on_and_never_retracts():
    script = [(0.2 + i, 0.8 + i, f"w{i}") for i in range(9)]  # one word a second
    scripted = ScriptedTranscriber(script)
    stream = StreamingTranscriber(scripted, settings=NO_VAD)
    tracking_offset(stream, scripted)
    updates = feed(stream, np.zeros(10 * SAMPLE_RATE, np.float32))
    committed = [w.word for u in updates for w in u.committed]
    assert "hyp" not in committed  # a word heard differently twice is never committed
    assert committed == [f"w{i}" for i in range(len(committed))]  # in order, no repeats
    assert len(committed) >= 7
    assert any(u.partial for u in updates)  # the newest word shows first as partial text
    final = stream.end_turn()
    everything = committed + [w.word for w in final.committed]
    assert everything[: len(script)] == [w for _, _, w in script]
    assert final.turn.text.split() == everything  # the turn is exactly what was committed


def test_trims_the_buffer_and_prompts_with_the_text_before_it():
    script = [(0.2 + i, 0.8 + i, f"w{i}") for i in range(12)]
    scripted = ScriptedTranscriber(script)
    stream = StreamingTranscriber(scripted, settings=NO_VAD)
    tracking_offset(stream, scripted)
    feed(stream, np.zeros(12 * SAMPLE_RATE, np.float32))
    longest = max(seconds for seconds, _ in scripted.calls)
    assert longest < NO_VAD.trim_seconds + 2 * NO_VAD.min_chunk_seconds
    prompts = [p for _, p in scripted.calls if p]
    assert prompts and prompts[-1].startswith("w0 w1")  # the trimmed-off committed words
    assert stream.buffered_seconds < NO_VAD.trim_seconds + NO_VAD.min_chunk_seconds


def test_words_that_take_no_time_at_the_end_are_not_heard():
    class Hallucinating:
        """Says "hello there." and then a made-up "Thank you." that takes no time."""

        engine = "scripted"

        def transcribe(self, audio, options):
            end = len(audio) / SAMPLE_RATE
            said = (Word(0.2, 0.6, "hello", 1.0), Word(0.7, 1.0, "there.", 1.0))
            made_up = (Word(end, end, "Thank", 1.0), Word(end, end, "you.", 1.0))
            segments = [Segment(0.2, 1.0, "hello there.", said), Segment(end, end, "", made_up)]
            return iter(segments), TranscriptionInfo("en", 1.0, end)

    stream = StreamingTranscriber(Hallucinating(), settings=NO_VAD)
    feed(stream, np.zeros(3 * SAMPLE_RATE, np.float32))
    assert stream.end_turn().turn.text == "hello there."


def test_a_segment_of_punctuation_alone_is_not_heard():
    class TrailingDot:
        """Says "hello there." and then a timed segment that is only "." (CI once committed
        "… tomorrow. ." from tiny.en)."""

        engine = "scripted"

        def transcribe(self, audio, options):
            said = (Word(0.2, 0.6, "hello", 1.0), Word(0.7, 1.0, "there.", 1.0))
            dot = (Word(1.2, 1.5, ".", 1.0),)
            segments = [Segment(0.2, 1.0, "hello there.", said), Segment(1.2, 1.5, ".", dot)]
            return iter(segments), TranscriptionInfo("en", 1.0, len(audio) / SAMPLE_RATE)

    stream = StreamingTranscriber(TrailingDot(), settings=NO_VAD)
    feed(stream, np.zeros(3 * SAMPLE_RATE, np.float32))
    assert stream.end_turn().turn.text == "hello there."


def test_settings_are_checked():
    with pytest.raises(WhisperTuneError, match="trim_seconds"):
        StreamingSettings(trim_seconds=40)


@pytest.fixture(scope="module")
def clip(english_clip):
    """Two seconds of silence, the sentence, one second of silence."""
    path, text = english_clip
    speech = load_audio(path)
    pad = np.zeros(SAMPLE_RATE, np.float32)
    return np.concatenate((pad, pad, speech, pad)), text


def test_live_tiny_en_matches_offline_and_vad_ends_the_turn(tiny_en_transcriber, clip):
    audio, text = clip
    options = TranscribeOptions(beam_size=1)
    offline = " ".join(s.text for s in tiny_en_transcriber.transcribe(audio, options)[0])
    calls = []
    transcribe = tiny_en_transcriber.transcribe

    class Counting:
        engine = "ct2"

        def transcribe(self, audio, options):
            calls.append(len(audio))
            return transcribe(audio, options)

    stream = StreamingTranscriber(Counting(), options)
    updates = feed(stream, audio)
    starts = [u.speech_started for u in updates if u.speech_started is not None]
    assert len(starts) == 1 and 1.5 < starts[0] < 2.5  # the VAD heard speech start at ~2 s
    ends = [u for u in updates if u.turn]
    turns = [u.turn for u in ends]
    assert len(turns) == 1  # the trailing second of silence ended the turn, no end_turn()
    assert any(u.committed for u in updates[: updates.index(ends[0])])  # words came early
    committed = " ".join(u.committed_text for u in updates if u.committed)
    assert normalize_english(committed) == normalize_english(turns[0].text)
    assert jiwer.wer(normalize_english(offline), normalize_english(turns[0].text)) <= 0.05
    assert jiwer.wer(normalize_english(text), normalize_english(turns[0].text)) <= 0.2
    assert 1.5 < turns[0].start < turns[0].words[0].start + 0.5
    assert min(calls) > 0.5 * SAMPLE_RATE  # the leading silence was never decoded


def test_a_backlog_of_two_turns_is_split_at_the_pause(tiny_en_transcriber, clip):
    """A slow consumer hands over seconds at once: both sentences in one block still make
    two turns, each said once."""
    audio, text = clip
    stream = StreamingTranscriber(tiny_en_transcriber, TranscribeOptions(beam_size=1))
    updates = stream.process(np.concatenate((audio, audio)))
    turns = [u.turn.text for u in updates if u.turn]
    assert len(turns) == 2 and turns[0] == turns[1], turns
    assert jiwer.wer(normalize_english(text), normalize_english(turns[0])) <= 0.2
