"""Decode any audio file to 16 kHz mono float32 without an ffmpeg binary.

soundfile (libsndfile) handles wav/flac/ogg quickly; PyAV handles everything else
(mp3, m4a/aac, opus, video containers) and resamples in one pass.

Audio is untrusted input (server uploads, downloaded corpora), so decoding is defensive:
FFmpeg may only open the container formats in :data:`AV_FORMATS` (no playlist, concat,
image-sequence or network demuxer that would open another file or URL), it reads through a
Python file object and never a URL, and ``max_seconds`` stops decoding, chunk by chunk, as
soon as the audio runs past the caller's limit.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from whisper_tune.errors import AudioError

log = logging.getLogger("whisper_tune.audio")

SAMPLE_RATE = 16000

AudioSource = str | Path | bytes | BinaryIO

# FFmpeg demuxers an input may be opened with (its ``format_whitelist``): ordinary audio and
# video containers. "mov" covers mp4/m4a/3gp, "matroska" covers webm, "asf" wma/wmv, "aac"
# ADTS streams. Everything else (concat, hls, image2, sdp, rtp, data, tee ...) is refused
# before its header is read, so no demuxer can open a file the upload names.
AV_FORMATS = (
    "aac", "ac3", "aiff", "amr", "amrnb", "amrwb", "ape", "asf", "au", "avi", "caf", "dts",
    "eac3", "flac", "flv", "matroska", "mov", "mp3", "mpeg", "mpegts", "ogg", "tta", "w64",
    "wav", "wv",
)  # fmt: skip
_AV_OPTIONS = {
    "format_whitelist": ",".join(AV_FORMATS),
    # input comes through a Python file object; no protocol (file, http, pipe ...) may open
    "protocol_whitelist": "none",
}
_BLOCK_SECONDS = 4  # libsndfile reads this much at a time
_UNKNOWN_FRAMES = 2**63 - 1  # libsndfile's frame count for a stream of unknown length


class AudioTooLong(AudioError):
    """The audio lasts longer than the caller's ``max_seconds``."""

    def __init__(self, name: str, max_seconds: float) -> None:
        super().__init__(f"{name}: audio is longer than the limit of {max_seconds:g} s")
        self.max_seconds = max_seconds


def load_audio(
    source: AudioSource,
    start_time: float | None = None,
    end_time: float | None = None,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Return mono float32 samples in [-1, 1] at ``sample_rate``, optionally sliced in seconds.

    Raises :class:`AudioTooLong` when the audio lasts more than ``max_seconds`` (checked from
    the header first, then while decoding), :class:`AudioError` for anything unreadable.
    """
    name = _describe(source)
    chunks = list(stream_audio(source, sample_rate, max_seconds))
    if not chunks or not sum(len(chunk) for chunk in chunks):
        raise AudioError(f"{name}: audio file holds no samples")
    audio = np.concatenate(chunks).astype(np.float32, copy=False)
    return slice_audio(audio, start_time, end_time, sample_rate, name)


def stream_audio(
    source: AudioSource, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None
) -> Iterator[np.ndarray]:
    """Yield consecutive chunks of mono float32 samples at ``sample_rate``.

    Raises :class:`AudioTooLong` once more than ``max_seconds`` would come out, so memory
    stays bounded by the limit whatever the file's header claims.
    """
    name = _describe(source)
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise AudioError(f"{name}: audio file not found")
    budget = _Budget(name, max_seconds, sample_rate)
    yielded = False
    try:
        for chunk in _soundfile_chunks(source, sample_rate, budget):
            yielded = True
            yield chunk
        if yielded:
            return
    except AudioError:
        raise
    except Exception as exc:  # libsndfile cannot read it: PyAV may
        if yielded:
            raise _undecodable(name, exc) from None
    try:
        yield from _av_chunks(source, sample_rate, budget)
    except AudioError:
        raise
    except Exception as exc:
        raise _undecodable(name, exc) from None


def slice_audio(
    audio: np.ndarray,
    start_time: float | None,
    end_time: float | None,
    sample_rate: int = SAMPLE_RATE,
    name: str = "audio",
) -> np.ndarray:
    """Cut ``audio`` to [start_time, end_time) seconds, checking the bounds."""
    if start_time is None and end_time is None:
        return audio
    duration = len(audio) / sample_rate
    start = 0.0 if start_time is None else float(start_time)
    end = duration if end_time is None else float(end_time)
    if start < 0 or end <= start:
        raise AudioError(f"{name}: bad slice start_time={start} end_time={end}")
    if start >= duration:
        raise AudioError(f"{name}: start_time {start}s is past the end ({duration:.2f}s)")
    return audio[int(round(start * sample_rate)) : int(round(min(end, duration) * sample_rate))]


def audio_duration(source: AudioSource) -> float:
    """Duration in seconds (reads the header when possible, else decodes)."""
    if isinstance(source, (str, Path, bytes)):
        try:
            import soundfile

            info = soundfile.info(io.BytesIO(source) if isinstance(source, bytes) else str(source))
            if 0 < info.frames < _UNKNOWN_FRAMES:
                return info.frames / info.samplerate
        except Exception:
            pass
    return len(load_audio(source)) / SAMPLE_RATE


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM wav."""
    import soundfile

    soundfile.write(str(path), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")


def resample(audio: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited polyphase resampling."""
    if orig_rate == new_rate:
        return audio
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(orig_rate), int(new_rate))
    return resample_poly(audio, new_rate // g, orig_rate // g).astype(np.float32)


class _Budget:
    """Counts the samples decoded so far against ``max_seconds`` (None: no limit)."""

    def __init__(self, name: str, max_seconds: float | None, sample_rate: int) -> None:
        self.name = name
        self.max_seconds = max_seconds
        self.limit = None if max_seconds is None else int(max_seconds * sample_rate)
        self.samples = 0

    def check_declared(self, seconds: float | None) -> None:
        """Refuse up front when the header already says the audio is too long."""
        if self.max_seconds is not None and seconds is not None and seconds > self.max_seconds:
            raise AudioTooLong(self.name, self.max_seconds)

    def take(self, chunk: np.ndarray) -> np.ndarray:
        self.samples += len(chunk)
        if self.limit is not None and self.samples > self.limit:
            raise AudioTooLong(self.name, self.max_seconds)
        return chunk


def _soundfile_chunks(
    source: AudioSource, sample_rate: int, budget: _Budget
) -> Iterator[np.ndarray]:
    """libsndfile's formats (it opens nothing but the file itself), read in blocks."""
    import soundfile

    with soundfile.SoundFile(_as_file(source)) as sound:
        if not 0 < sound.frames < _UNKNOWN_FRAMES:
            raise ValueError("unknown length")  # libsndfile cannot read it as a stream
        rate = sound.samplerate
        budget.check_declared(sound.frames / rate)
        resampler = _Resampler(rate, sample_rate)
        while len(block := sound.read(_BLOCK_SECONDS * rate, dtype="float32", always_2d=True)):
            for chunk in resampler.push(block.mean(axis=1)):
                yield budget.take(chunk)
        for chunk in resampler.push(None):
            yield budget.take(chunk)


def _av_chunks(source: AudioSource, sample_rate: int, budget: _Budget) -> Iterator[np.ndarray]:
    """Everything else through FFmpeg, limited to :data:`AV_FORMATS`. Packets that do not
    decode are skipped with a warning (as faster-whisper's ``_ignore_invalid_frames``)."""
    import av

    with (
        _opened(source) as file,
        av.open(file, metadata_errors="ignore", container_options=_AV_OPTIONS) as container,
    ):
        if not container.streams.audio:
            raise AudioError(f"{budget.name}: cannot decode audio (no audio stream)")
        stream = container.streams.audio[0]
        if container.duration is not None:
            budget.check_declared(container.duration / av.time_base)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        skipped = 0
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                skipped += 1
                continue
            for frame in frames:
                for out in resampler.resample(frame):
                    yield budget.take(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            yield budget.take(out.to_ndarray().reshape(-1))
    if skipped:
        log.warning("%s: skipped %d packets that did not decode", budget.name, skipped)


class _Resampler:
    """Streaming resampling to mono float32 at ``new_rate`` (FFmpeg's swresample keeps the
    filter state between blocks, so block edges leave no seams)."""

    def __init__(self, orig_rate: int, new_rate: int) -> None:
        self.orig_rate = orig_rate
        self.resampler = None
        if orig_rate != new_rate:
            import av

            self.resampler = av.AudioResampler(format="flt", layout="mono", rate=new_rate)

    def push(self, mono: np.ndarray | None) -> Iterator[np.ndarray]:
        """Resample one block (None: flush what the filter still holds)."""
        if self.resampler is None:
            if mono is not None:
                yield mono.astype(np.float32, copy=False)
            return
        import av

        frame = None
        if mono is not None:
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(mono, dtype=np.float32)[None, :], format="flt", layout="mono"
            )
            frame.sample_rate = self.orig_rate
        for out in self.resampler.resample(frame):
            yield out.to_ndarray().reshape(-1)


@contextmanager
def _opened(source: AudioSource) -> Iterator[BinaryIO]:
    """``source`` as a binary file object (a path is opened here, never handed to FFmpeg)."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as file:
            yield file
    else:
        yield _as_file(source)


def _as_file(source: AudioSource):
    if isinstance(source, bytes):
        return io.BytesIO(source)
    if isinstance(source, Path):
        return str(source)
    if hasattr(source, "seek"):
        source.seek(0)
    return source


def _describe(source: AudioSource) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return getattr(source, "name", None) or "uploaded audio"


def _undecodable(name: str, exc: BaseException) -> AudioError:
    """FFmpeg's own message can tell whether some path exists: it goes to the debug log only."""
    log.debug("%s: cannot decode audio: %s", name, exc)
    return AudioError(f"{name}: cannot decode audio")
