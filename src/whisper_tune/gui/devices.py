"""Microphone recording and playback through sounddevice (PortAudio), with clear errors.

sounddevice is imported on first use, so the app opens (and says what is missing) on
machines without PortAudio or without any sound device.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np

from whisper_tune.audio import SAMPLE_RATE, resample
from whisper_tune.errors import AudioError


def _sounddevice(purpose: str):
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library is missing
        raise AudioError(
            f"cannot {purpose}: PortAudio is not available ({exc}); "
            "install it (Debian/Ubuntu: apt install libportaudio2)"
        ) from None
    return sounddevice


class Recorder:
    """Records mono audio from the default input device until :meth:`stop`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._frames = 0
        self._stream = None

    @property
    def active(self) -> bool:
        return self._stream is not None

    @property
    def seconds(self) -> float:
        """How much has been recorded so far."""
        stream = self._stream
        return self._frames / stream.samplerate if stream else 0.0

    def start(self) -> None:
        """Open the default microphone at its own sample rate and start recording."""
        sd = _sounddevice("record")
        self._chunks, self._frames = [], 0
        stream = None
        try:
            stream = sd.InputStream(channels=1, dtype="float32", callback=self._callback)
            stream.start()
        except Exception as exc:  # PortAudioError: no input device, device busy, …
            if stream is not None:
                stream.close()
            raise AudioError(f"cannot record: no usable microphone ({exc})") from None
        self._stream = stream

    def stop(self) -> np.ndarray:
        """Stop recording; return what was recorded as 16 kHz mono float32."""
        stream = self._stream
        if stream is None:
            raise AudioError("not recording")
        chunks = self.discard()
        if not chunks:
            raise AudioError("the microphone delivered no audio")
        audio = np.concatenate(chunks)
        return resample(audio, int(stream.samplerate), SAMPLE_RATE)

    def discard(self) -> list[np.ndarray]:
        """Close the microphone, if open; return (and forget) the recorded blocks."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()
        with self._lock:
            chunks, self._chunks = self._chunks, []
        return chunks

    def _callback(self, indata: np.ndarray, frames: int, time, status) -> None:
        with self._lock:
            self._chunks.append(indata[:, 0].copy())
            self._frames += frames


class StreamResampler:
    """Band-limited resampling of audio that arrives in blocks, without seams: each block is
    resampled with some already-converted audio before it and some held back after it (the
    filter's reach), and only the output between them is kept. Holds back a few ms."""

    def __init__(self, orig_rate: int, new_rate: int) -> None:
        from math import ceil, gcd

        common = gcd(orig_rate, new_rate)
        self.up, self.down = new_rate // common, orig_rate // common
        self.margin = self.down * ceil(64 / self.down)  # input samples; > the filter's half
        self._context = np.zeros(0, np.float32)  # converted already: the filter's left side
        self._pending = np.zeros(0, np.float32)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if self.up == self.down:
            return block
        from scipy.signal import resample_poly

        data = np.concatenate((self._context, self._pending, block))
        begin = len(self._context)
        end = begin + (len(data) - begin - self.margin) // self.down * self.down
        if end <= begin:
            self._pending = data[begin:]
            return np.zeros(0, np.float32)
        converted = resample_poly(data, self.up, self.down)
        out = converted[begin * self.up // self.down : end * self.up // self.down]
        self._context = data[max(0, end - self.margin) : end]
        self._pending = data[end:]
        return out.astype(np.float32)


class LiveMicrophone:
    """The default microphone as a live source: iterate to get 16 kHz mono float32 blocks
    as they are recorded, until :meth:`close` (from any thread) ends the iteration."""

    def __init__(self, block_seconds: float = 0.1) -> None:
        self.block_seconds = block_seconds
        self._blocks: queue.Queue[np.ndarray | None] = queue.Queue()
        self._stream = None
        self._resample: StreamResampler | None = None

    def open(self) -> LiveMicrophone:
        sd = _sounddevice("record")
        try:
            rate = int(sd.query_devices(kind="input")["default_samplerate"])
            self._resample = StreamResampler(rate, SAMPLE_RATE)
            self._stream = sd.InputStream(
                samplerate=rate,
                channels=1,
                dtype="float32",
                blocksize=int(rate * self.block_seconds),
                callback=self._callback,
            )
            self._stream.start()
        except Exception as exc:  # PortAudioError: no input device, device busy, …
            self.close()
            raise AudioError(f"cannot record: no usable microphone ({exc})") from None
        return self

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()
        self._blocks.put(None)

    def __iter__(self) -> Iterator[np.ndarray]:
        while (block := self._blocks.get()) is not None:
            yield block

    def _callback(self, indata: np.ndarray, frames: int, time, status) -> None:
        if self._stream is not None and self._resample is not None:
            self._blocks.put(self._resample(indata[:, 0].astype(np.float32)))


class Player:
    """Plays 16 kHz audio on the default output device."""

    def play(self, audio: np.ndarray) -> None:
        sd = _sounddevice("play audio")
        try:
            rate = int(sd.query_devices(kind="output")["default_samplerate"])
            sd.play(resample(audio, SAMPLE_RATE, rate), rate)
        except Exception as exc:  # PortAudioError: no output device
            raise AudioError(f"cannot play: no usable audio output ({exc})") from None

    def stop(self) -> None:
        try:
            sd = _sounddevice("stop playback")
        except AudioError:  # without PortAudio nothing can be playing
            return
        sd.stop()
