"""The desktop app's state and work, free of widgets, so it can be driven and tested alone.

Slow work runs on worker threads: one loads the model and then runs recognition jobs in
order, another decodes opened files. Workers never touch the state; they post events on a
queue, and :meth:`Controller.poll` (called from the UI thread) applies them and hands them
to the view. So the window never waits on the model and never races with it.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from whisper_tune.audio import SAMPLE_RATE, load_audio
from whisper_tune.engine_settings import GUI_DEFAULTS, EngineSettings
from whisper_tune.errors import WhisperTuneError
from whisper_tune.gui.devices import LiveMicrophone, Player, Recorder
from whisper_tune.inference import load_transcriber
from whisper_tune.inference.live import run_live
from whisper_tune.inference.postprocess import word_separator
from whisper_tune.inference.streaming import StreamingTranscriber, StreamUpdate
from whisper_tune.inference.types import (
    Segment,
    TranscribeOptions,
    Transcriber,
    TranscriptionInfo,
)
from whisper_tune.inference.writers import WriteVTT, write_transcript

log = logging.getLogger("whisper_tune.gui")


@dataclass
class Source:
    """One opened file or recording and what was recognised in it."""

    id: int
    name: str
    audio: np.ndarray
    path: Path | None = None
    segments: list[Segment] = field(default_factory=list)
    info: TranscriptionInfo | None = None

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


# --- events posted by the workers, applied and returned by Controller.poll -------------------


@dataclass(frozen=True)
class ModelReady:
    description: str


@dataclass(frozen=True)
class SourceAdded:
    source: Source


@dataclass(frozen=True)
class RecognitionStarted:
    source_id: int
    position: int  # 1-based place of this source in the job
    count: int


@dataclass(frozen=True)
class SegmentDecoded:
    source_id: int
    segment: Segment
    progress: float  # 0..1 of the source's audio decoded so far


@dataclass(frozen=True)
class SourceRecognised:
    source_id: int
    info: TranscriptionInfo
    seconds: float


@dataclass(frozen=True)
class RecognitionEnded:
    cancelled: bool


@dataclass(frozen=True)
class LiveText:
    """The live turn so far: its committed text and the partial text that may still change
    (an ended turn arrives as :class:`SegmentDecoded`)."""

    source_id: int
    committed: str
    partial: str


@dataclass(frozen=True)
class LiveAudio:
    """What the microphone heard during a live session (posted when it ends)."""

    source_id: int
    audio: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Failed:
    message: str


Event = (
    ModelReady
    | SourceAdded
    | RecognitionStarted
    | SegmentDecoded
    | LiveText
    | LiveAudio
    | SourceRecognised
    | RecognitionEnded
    | Failed
)


_CUE_TIMES = WriteVTT()  # the view shows times as WebVTT writes them


def format_segment(segment: Segment, timestamps: bool) -> str:
    """One line of the transcript view: ``[00:01.200 --> 00:03.500] text`` or the text alone."""
    if not timestamps:
        return segment.text
    start, end = (_CUE_TIMES.format_timestamp(t) for t in (segment.start, segment.end))
    return f"[{start} --> {end}] {segment.text}"


class Controller:
    """Sources, the model, recognition, recording and playback, for any view."""

    def __init__(
        self,
        load_model: Callable[[], Transcriber],
        model_name: str,
        options: TranscribeOptions,
        recorder: Recorder | None = None,
        player: Player | None = None,
    ) -> None:
        self.model_name = model_name
        self.options = options
        self.sources: dict[int, Source] = {}
        self.model_ready = False
        self.busy = False
        self.recorder = recorder or Recorder()
        self.player = player or Player()
        self._load_model = load_model
        self._transcriber: Transcriber | None = None
        self._events: queue.Queue[Event] = queue.Queue()
        self._cancel = threading.Event()
        self._ids = itertools.count(1)
        self._recordings = itertools.count(1)
        self._lives = itertools.count(1)
        self.microphone: LiveMicrophone | None = None  # open while live
        self._model_worker = ThreadPoolExecutor(1, thread_name_prefix="whisper-tune-model")
        self._file_worker = ThreadPoolExecutor(1, thread_name_prefix="whisper-tune-files")

    # --- commands (UI thread) ---------------------------------------------------------------

    def start(self) -> None:
        """Load the model in the background; :class:`ModelReady` or :class:`Failed` follows."""
        self._model_worker.submit(self._guarded, self._load)

    def open_files(self, paths: Iterable[str | Path]) -> None:
        """Decode each file in the background; one :class:`SourceAdded` or :class:`Failed` each."""
        for path in paths:
            self._file_worker.submit(self._guarded, self._decode, Path(path))

    def recognise(self, source_ids: Sequence[int], **changes) -> None:
        """Recognise the sources in order with ``self.options`` updated by ``changes``.

        ``changes`` are :class:`TranscribeOptions` fields (language, task, to_simple, …).
        """
        if not self.model_ready:
            raise WhisperTuneError("the model is not loaded yet")
        if self.busy:
            raise WhisperTuneError("recognition is already running")
        if not source_ids:
            raise WhisperTuneError("open an audio file or record something first")
        options = dataclasses.replace(self.options, **changes)
        jobs = [(i, self.sources[i].audio) for i in source_ids]
        self._cancel.clear()
        self.busy = True
        self._model_worker.submit(self._guarded, self._recognise, jobs, options)

    def cancel(self) -> None:
        """Stop recognition after the segment being decoded."""
        self._cancel.set()

    @property
    def live(self) -> bool:
        return self.microphone is not None

    def start_live(self, **changes) -> Source:
        """Transcribe the microphone as it is heard, into a new source, until
        :meth:`stop_live`: :class:`LiveText` while a turn goes on, :class:`SegmentDecoded`
        when the VAD ends it, :class:`RecognitionEnded` after the last one."""
        if not self.model_ready:
            raise WhisperTuneError("the model is not loaded yet")
        if self.busy:
            raise WhisperTuneError("recognition is already running")
        options = dataclasses.replace(self.options, **changes)
        self.player.stop()
        microphone = LiveMicrophone().open()
        source = Source(next(self._ids), f"Live {next(self._lives)}", np.zeros(0, np.float32))
        self.sources[source.id] = source
        self.microphone, self.busy = microphone, True
        stream = StreamingTranscriber(self._transcriber, options)
        self._model_worker.submit(self._guarded, self._live, microphone, stream, source.id)
        return source

    def stop_live(self) -> None:
        """Close the microphone; the last turn is transcribed, then RecognitionEnded."""
        microphone, self.microphone = self.microphone, None
        if microphone is not None:
            microphone.close()

    def start_recording(self) -> None:
        self.player.stop()
        self.recorder.start()

    def stop_recording(self) -> Source:
        """Stop the microphone and add what it recorded as a new source."""
        audio = self.recorder.stop()
        source = Source(next(self._ids), f"Recording {next(self._recordings)}", audio)
        self.sources[source.id] = source
        return source

    def play(self, source_id: int) -> None:
        self.player.play(self.sources[source_id].audio)

    def stop_playback(self) -> None:
        self.player.stop()

    def transcript(self, source_id: int, timestamps: bool) -> str:
        """The text shown for a source: one line per segment."""
        lines = (format_segment(s, timestamps) for s in self.sources[source_id].segments)
        return "\n".join(lines)

    def save(self, source_id: int, path: str | Path) -> Path:
        """Write a source's transcript; the format (txt/srt/vtt/json) follows the extension."""
        source = self.sources[source_id]
        if not source.segments:
            raise WhisperTuneError(f"nothing recognised in {source.name} yet")
        language = source.info.language if source.info else "en"
        return write_transcript(path, source.segments, language, duration=source.duration)

    def poll(self) -> list[Event]:
        """Apply the events the workers posted since the last call and return them."""
        events = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return events
            self._apply(event)
            events.append(event)

    def close(self) -> None:
        """Stop recording, playback and recognition; let the workers wind down."""
        self._cancel.set()
        self.stop_live()
        self.recorder.discard()
        self.player.stop()
        self._model_worker.shutdown(wait=False, cancel_futures=True)
        self._file_worker.shutdown(wait=False, cancel_futures=True)

    # --- state changes (UI thread) ----------------------------------------------------------

    def _apply(self, event: Event) -> None:
        if isinstance(event, ModelReady):
            self.model_ready = True
        elif isinstance(event, SourceAdded):
            self.sources[event.source.id] = event.source
        elif isinstance(event, RecognitionStarted):
            self.sources[event.source_id].segments = []
            self.sources[event.source_id].info = None
        elif isinstance(event, SegmentDecoded):
            self.sources[event.source_id].segments.append(event.segment)
        elif isinstance(event, SourceRecognised):
            self.sources[event.source_id].info = event.info

        elif isinstance(event, LiveAudio):
            self.sources[event.source_id].audio = event.audio
        elif isinstance(event, RecognitionEnded):
            self.busy = False
            self.stop_live()  # closed already, unless the live worker failed

    # --- work (worker threads) --------------------------------------------------------------

    def _guarded(self, work: Callable, *args) -> None:
        try:
            work(*args)
        except WhisperTuneError as exc:
            self._events.put(Failed(str(exc)))
        except Exception as exc:  # a bug: show it in the window, log the traceback
            log.exception("unexpected error in the GUI worker")
            self._events.put(Failed(f"unexpected error: {exc}"))

    def _load(self) -> None:
        started = time.perf_counter()
        self._transcriber = self._load_model()
        seconds = time.perf_counter() - started
        engine = self._transcriber.engine
        self._events.put(ModelReady(f"{self.model_name} ({engine}, loaded in {seconds:.1f} s)"))

    def _decode(self, path: Path) -> None:
        audio = load_audio(path)
        self._events.put(SourceAdded(Source(next(self._ids), path.name, audio, path)))

    def _live(self, microphone: LiveMicrophone, stream: StreamingTranscriber, source_id: int):
        heard: list[np.ndarray] = []
        turn: list[str] = []  # the committed text of the turn going on

        def blocks():
            for block in microphone:
                heard.append(block)
                yield block

        def show(update: StreamUpdate) -> None:
            if update.turn is not None:
                turn.clear()
                self._events.put(SegmentDecoded(source_id, update.turn.segment(), 1.0))
                return
            if update.committed:
                turn.append(update.committed_text)
            committed = word_separator(stream.language or "en").join(turn)
            self._events.put(LiveText(source_id, committed, update.partial_text))

        started = time.perf_counter()
        try:
            transcript = run_live(blocks(), stream, show)
            audio = np.concatenate(heard) if heard else np.zeros(0, np.float32)
            self._events.put(LiveAudio(source_id, audio))
            info = TranscriptionInfo(transcript.language, 1.0, transcript.duration)
            self._events.put(SourceRecognised(source_id, info, time.perf_counter() - started))
        finally:
            self._events.put(RecognitionEnded(False))

    def _recognise(self, jobs: list[tuple[int, np.ndarray]], options: TranscribeOptions) -> None:
        done = 0
        try:
            for position, (source_id, audio) in enumerate(jobs, 1):
                if self._cancel.is_set():
                    break
                self._events.put(RecognitionStarted(source_id, position, len(jobs)))
                if not self._recognise_one(source_id, audio, options):
                    break
                done += 1
        finally:
            self._events.put(RecognitionEnded(self._cancel.is_set() and done < len(jobs)))

    def _recognise_one(self, source_id: int, audio: np.ndarray, options: TranscribeOptions) -> bool:
        """Stream one source's segments; False if cancelled before its end."""
        started = time.perf_counter()
        duration = max(len(audio) / SAMPLE_RATE, 1e-6)
        segments, info = self._transcriber.transcribe(
            audio, dataclasses.replace(options, cancel=self._cancel)
        )
        for segment in segments:  # the engine stops decoding once self._cancel is set
            progress = min(segment.end / duration, 1.0)
            self._events.put(SegmentDecoded(source_id, segment, progress))
        if self._cancel.is_set():
            return False
        self._events.put(SourceRecognised(source_id, info, time.perf_counter() - started))
        return True


def create_controller(
    engine: EngineSettings = GUI_DEFAULTS, options: TranscribeOptions | None = None
) -> Controller:
    """A controller that loads ``engine.model_path`` (a model dir or bundled name) when started
    and recognises with ``options`` (beam size, VAD...) unless the view changes them."""
    load = functools.partial(load_transcriber, engine)
    return Controller(load, engine.model_path, options or TranscribeOptions())
