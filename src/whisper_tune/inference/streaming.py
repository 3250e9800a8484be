"""Live transcription over any :class:`~whisper_tune.inference.types.Transcriber`.

The policy is whisper_streaming's LocalAgreement-2 (Macháček et al., 2023): audio is appended
to a buffer as it arrives; every ``min_chunk_seconds`` of new audio the whole buffer is decoded
again with word timestamps, prompted with the text committed so far, and the words on which
this hypothesis and the previous one agree (their longest common prefix) are committed.
Committed words are never retracted; the rest of the newest hypothesis is the partial text,
which later decodes may change. Once the buffer is longer than ``trim_seconds`` it is cut at
the end of a decoded segment that lies inside the committed text, so decoding stays short.

Turns: with ``vad`` on, faster-whisper's Silero VAD watches the buffer; audio with no speech is
not decoded (no hallucinated "Thank you." on silence), and ``end_silence_seconds`` of silence
after speech ends the turn: its audio is decoded a last time and everything left is committed.
:meth:`StreamingTranscriber.end_turn` does the same on demand (a client's commit, the end of
a file).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from difflib import SequenceMatcher

import numpy as np

from whisper_tune.audio import SAMPLE_RATE
from whisper_tune.inference.chunks import WINDOW_SECONDS
from whisper_tune.inference.postprocess import word_separator
from whisper_tune.inference.types import Segment, TranscribeOptions, Transcriber, Word
from whisper_tune.options import check_ranges, option

_TIME_SLACK = 0.1  # a word starting this much before the last committed end may be new
_VAD_PAD_MS = 100  # speech padding of the VAD's regions
_VAD_PAD = _VAD_PAD_MS * SAMPLE_RATE // 1000
_NO_TIME = 0.02  # a word shorter than this was not heard (see _heard)
_VAD_STEP = SAMPLE_RATE // 5  # the VAD looks at the buffer every 0.2 s of audio
_VAD_LOOKBACK_SECONDS = 1.0  # ... at what came since, and the end silence + 1 s before


@dataclass(frozen=True)
class StreamingSettings:
    """How often the buffer is decoded, when it is trimmed and what ends a turn."""

    min_chunk_seconds: float = option(
        0.5,
        help="new audio between two decodes of the buffer (s); a decode that takes longer "
        "takes in all that arrived meanwhile",
        group="streaming",
    )
    trim_seconds: float = option(
        15.0,
        help="cut the buffer at a committed segment end once it is longer (s)",
        group="streaming",
    )
    vad: bool = option(
        True, help="Silero VAD: skip silence, end a turn after silence", group="streaming"
    )
    vad_threshold: float = option(
        0.5, help="speech probability above which a VAD frame is speech", group="streaming"
    )
    end_silence_seconds: float = option(
        0.5, help="silence after speech that ends a turn (s)", group="streaming"
    )
    prompt_chars: int = option(
        200, help="characters of committed text given as the prompt", group="streaming"
    )

    def __post_init__(self) -> None:
        check_ranges(
            self,
            min_chunk_seconds=0 < self.min_chunk_seconds <= WINDOW_SECONDS / 2,
            trim_seconds=self.min_chunk_seconds < self.trim_seconds < WINDOW_SECONDS,
            vad_threshold=0 < self.vad_threshold < 1,
            end_silence_seconds=self.end_silence_seconds > 0,
            prompt_chars=self.prompt_chars >= 0,
        )


@dataclass(frozen=True)
class Turn:
    """One utterance, ended by silence or by the caller; times from the start of the stream."""

    start: float
    end: float
    words: tuple[Word, ...]
    language: str | None = None

    @property
    def text(self) -> str:
        return join_words(self.words, self.language)

    def segment(self) -> Segment:
        """The turn as a segment, for the transcript writers."""
        return Segment(self.start, self.end, self.text, self.words)


@dataclass(frozen=True)
class StreamUpdate:
    """What changed with one call: words newly committed, the words of the current partial
    hypothesis, the stream time a turn began (VAD) and the turn that ended, if any."""

    committed: tuple[Word, ...] = ()
    partial: tuple[Word, ...] = ()
    speech_started: float | None = None
    turn: Turn | None = None
    language: str | None = None

    @property
    def committed_text(self) -> str:
        return join_words(self.committed, self.language)

    @property
    def partial_text(self) -> str:
        return join_words(self.partial, self.language)


def join_words(words: tuple[Word, ...] | list[Word], language: str | None) -> str:
    """Words as text, separated as ``language`` is written (a space, or none for Chinese)."""
    return word_separator(language or "en").join(w.word for w in words).strip()


class StreamingTranscriber:
    """Feed 16 kHz mono float32 audio with :meth:`process` as it arrives; each call returns
    the updates it caused (usually one). Not thread-safe: one caller at a time."""

    def __init__(
        self,
        transcriber: Transcriber,
        options: TranscribeOptions | None = None,
        settings: StreamingSettings | None = None,
    ) -> None:
        base = options or TranscribeOptions()
        self.transcriber = transcriber
        self.settings = settings or StreamingSettings()
        self.options = dataclasses.replace(
            base, word_timestamps=True, vad_filter=False, batch_size=1, cancel=None
        )
        self._first_prompt = base.initial_prompt
        self._history = ""  # the end of the committed text before the buffer: the prompt
        self.language: str | None = base.language
        self._in_buffer: list[Word] = []  # committed words whose audio is in the buffer
        self._reset_buffer(0.0)

    @property
    def buffered_seconds(self) -> float:
        return len(self._audio) / SAMPLE_RATE

    def process(self, audio: np.ndarray) -> list[StreamUpdate]:
        """Append ``audio``; every ``_VAD_STEP`` the VAD looks for a turn's start and end,
        every ``min_chunk_seconds`` of a turn's audio the buffer is decoded."""
        self._audio = np.concatenate((self._audio, np.asarray(audio, dtype=np.float32)))
        updates: list[StreamUpdate] = []
        while True:
            if self.settings.vad and len(self._audio) - self._vad_checked >= _VAD_STEP:
                update = self._vad_step()
                if update is not None:
                    updates.append(update)
                continue
            listening = not self.settings.vad or self._turn_start is not None
            new = len(self._audio) - self._decoded_samples
            if not listening or new < self.settings.min_chunk_seconds * SAMPLE_RATE:
                return updates
            updates.append(self._decode_step(len(self._audio)))

    def end_turn(self) -> StreamUpdate:
        """Decode what is buffered a last time and commit it all (a turn is over)."""
        speech = not self.settings.vad or bool(_speech_regions(self._audio, self.settings))
        return self._finish(len(self._audio), decode=speech)

    def clear(self) -> StreamUpdate:
        """Drop the uncommitted audio and partial text; committed text stays committed."""
        self._reset_buffer(self._offset + self.buffered_seconds)
        return StreamUpdate()

    # --- steps -----------------------------------------------------------------------

    def _vad_step(self) -> StreamUpdate | None:
        """Where the VAD hears speech in the audio that came since its last look (and a few
        seconds before): a turn starts (an update saying when), ends at the first speech
        followed by enough silence (its last decode), or silence is dropped."""
        lookback = int((self.settings.end_silence_seconds + _VAD_LOOKBACK_SECONDS) * SAMPLE_RATE)
        start = max(0, self._vad_checked - lookback)
        self._vad_checked = len(self._audio)
        regions = [
            (start + a, start + b) for a, b in _speech_regions(self._audio[start:], self.settings)
        ]
        if not regions:
            if self._turn_start is not None:  # the speech ended before the window: where?
                spoken = _speech_regions(self._audio, self.settings)
                return self._finish(spoken[-1][1] if spoken else 0, decode=True)
            keep = int(self.settings.min_chunk_seconds * SAMPLE_RATE)  # speech may start at its end
            self._drop(max(0, len(self._audio) - keep))
            return None
        started = None
        if self._turn_start is None:
            self._turn_start = started = self._offset + regions[0][0] / SAMPLE_RATE
            self._decoded_samples = regions[0][0]  # the first decode once a chunk is spoken
        end = regions[0][1]  # regions are apart by at least the end silence
        need = self.settings.end_silence_seconds * SAMPLE_RATE - _VAD_PAD
        if len(regions) > 1 or len(self._audio) - end >= need:
            # decoded again up to the speech's end: an earlier hypothesis may have heard some
            # of the silence after it, where Whisper likes to add "Thank you."
            update = self._finish(end, decode=True)
            return dataclasses.replace(update, speech_started=started)
        if started is None:
            return None
        return StreamUpdate(
            partial=tuple(self._previous), speech_started=started, language=self.language
        )

    def _decode_step(self, upto: int) -> StreamUpdate:
        """Decode the buffer's first ``upto`` samples; commit what two hypotheses agree on."""
        words, segments = self._decode(upto)
        new = self._fresh(words)
        agreed: list[Word] = []
        for word, previous in zip(new, self._previous, strict=False):
            if _key(word) != _key(previous):
                break
            agreed.append(word)
        self._previous = new[len(agreed) :]
        self._commit(agreed)
        self._trim(segments)
        return StreamUpdate(tuple(agreed), tuple(self._previous), language=self.language)

    def _finish(self, upto: int, decode: bool) -> StreamUpdate:
        """End the turn at sample ``upto``: commit the whole hypothesis of its audio (decoded
        again when ``decode``, else the last one)."""
        new = self._fresh(self._decode(upto)[0]) if decode and upto > 0 else self._previous
        self._commit(new)
        turn = None
        if self._turn_words:
            start = self._turn_words[0].start if self._turn_start is None else self._turn_start
            end = self._offset + upto / SAMPLE_RATE
            turn = Turn(start, end, tuple(self._turn_words), self.language)
        self._reset_buffer(self._offset + upto / SAMPLE_RATE, self._audio[upto:])
        return StreamUpdate(tuple(new), turn=turn, language=self.language)

    # --- helpers ---------------------------------------------------------------------

    def _decode(self, upto: int) -> tuple[list[Word], list[Segment]]:
        """Words and segments of the buffer's first ``upto`` samples, in stream time."""
        self._decoded_samples = max(self._decoded_samples, upto)
        options = dataclasses.replace(self.options, initial_prompt=self._prompt())
        segments, info = self.transcriber.transcribe(self._audio[:upto], options)
        segments = list(segments)
        self.language = info.language
        offset = self._offset
        words = [
            Word(offset + w.start, offset + w.end, w.word, w.probability) for w in _heard(segments)
        ]
        moved = [
            dataclasses.replace(s, start=s.start + offset, end=s.end + offset) for s in segments
        ]
        return words, moved

    def _fresh(self, words: list[Word]) -> list[Word]:
        """The hypothesis without what is already committed. Word times move between
        decodes, so the committed words still in the buffer are found in it by text; when
        its last one is not there (the model changed its mind), by time."""
        committed = [_key(w) for w in self._in_buffer]
        if not committed:
            return words
        matcher = SequenceMatcher(None, committed, [_key(w) for w in words], autojunk=False)
        blocks = [m for m in matcher.get_matching_blocks() if m.size]
        if blocks and blocks[-1].a + blocks[-1].size == len(committed):
            return words[blocks[-1].b + blocks[-1].size :]
        return [w for w in words if w.start > self._last_end - _TIME_SLACK]

    def _commit(self, words: list[Word]) -> None:
        if not words:
            return
        self._turn_words.extend(words)
        self._in_buffer.extend(words)
        self._last_end = words[-1].end

    def _trim(self, segments: list[Segment]) -> None:
        """Past ``trim_seconds``, cut the buffer at the last segment end before the last
        committed word (whisper_streaming's "segment" trimming)."""
        if self.buffered_seconds <= self.settings.trim_seconds:
            return
        ends = [s.end for s in segments[:-1] if s.end <= self._last_end]
        cut = ends[-1] if ends else None
        if (
            cut is None
            and self.buffered_seconds > WINDOW_SECONDS - 2 * self.settings.min_chunk_seconds
        ):
            cut = self._last_end  # one window is all Whisper sees: cut at the committed text
        if cut is not None and cut > self._offset:
            self._drop(int((cut - self._offset) * SAMPLE_RATE))

    def _drop(self, samples: int) -> None:
        """Cut the buffer's first ``samples``; committed words before the cut become prompt."""
        self._audio = self._audio[samples:]
        self._offset += samples / SAMPLE_RATE
        self._decoded_samples = max(0, self._decoded_samples - samples)
        self._vad_checked = max(0, self._vad_checked - samples)
        gone = [w for w in self._in_buffer if w.end <= self._offset]
        self._in_buffer = self._in_buffer[len(gone) :]
        self._remember(gone)

    def _remember(self, words: list[Word]) -> None:
        if words:
            text = join_words(words, self.language)
            separator = word_separator(self.language or "en")
            history = f"{self._history}{separator}{text}"
            self._history = history[max(0, len(history) - self.settings.prompt_chars) :]

    def _prompt(self) -> str | None:
        """The user's prompt and the committed text before the buffer (text inside it would
        make Whisper skip the words it names)."""
        prompt = " ".join(p for p in (self._first_prompt, self._history.strip()) if p)
        return prompt or None

    def _reset_buffer(self, offset: float, rest: np.ndarray | None = None) -> None:
        self._remember(self._in_buffer)
        self._in_buffer = []
        self._audio = np.zeros(0, np.float32) if rest is None else rest
        self._offset = offset
        self._decoded_samples = 0
        self._vad_checked = 0
        self._previous: list[Word] = []
        self._turn_words: list[Word] = []
        self._turn_start: float | None = None
        self._last_end = offset


def _speech_regions(audio: np.ndarray, settings: StreamingSettings) -> list[tuple[int, int]]:
    """Silero VAD speech regions of ``audio`` (sample indices); a region still open at the end
    of the audio ends there."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(
        threshold=settings.vad_threshold,
        min_silence_duration_ms=int(settings.end_silence_seconds * 1000),
        speech_pad_ms=_VAD_PAD_MS,
    )
    return [(int(r["start"]), int(r["end"])) for r in get_speech_timestamps(audio, options)]


def _heard(segments: list[Segment]) -> list[Word]:
    """The words Whisper timed as spoken. At the end of a buffer it sometimes adds a phrase
    of words that take no time ("Thank you very much.", or the sentence again): a segment
    whose words mostly take none is dropped, and so are such words at the very end. A segment
    of punctuation alone (a lone "." after the sentence) says nothing and is dropped too."""
    words: list[Word] = []
    for segment in segments:
        timed = segment.words or _spread(segment)
        empty = sum(w.end - w.start < _NO_TIME for w in timed)
        spoken = any(ch.isalnum() for w in timed for ch in w.word)
        if timed and spoken and empty * 2 < len(timed):
            words.extend(timed)
    while words and words[-1].end - words[-1].start < _NO_TIME:
        words.pop()
    return words


def _spread(segment: Segment) -> tuple[Word, ...]:
    """Words for an engine that gives none: the text's words spread evenly over the segment."""
    parts = segment.text.split()
    if not parts:
        return ()
    step = (segment.end - segment.start) / len(parts)
    return tuple(
        Word(segment.start + i * step, segment.start + (i + 1) * step, " " + part, 1.0)
        for i, part in enumerate(parts)
    )


def _key(word: Word) -> str:
    """A word as hypotheses are compared: case and punctuation do not count."""
    return re.sub(r"[^\w']", "", word.word.lower()) or word.word
