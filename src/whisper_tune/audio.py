"""Decode any audio file to 16 kHz mono float32 without an ffmpeg binary.

soundfile (libsndfile) handles wav/flac/ogg quickly; PyAV handles everything else
(mp3, m4a/aac, opus, video containers) and resamples in one pass.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np

from whisper_tune.errors import AudioError

SAMPLE_RATE = 16000

AudioSource = str | Path | bytes | BinaryIO


def load_audio(
    source: AudioSource,
    start_time: float | None = None,
    end_time: float | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Return mono float32 samples in [-1, 1] at ``sample_rate``, optionally sliced in seconds."""
    name = _describe(source)
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise AudioError(f"{name}: audio file not found")
    try:
        audio = _decode_soundfile(source, sample_rate)
    except Exception:  # libsndfile cannot read it: fall back to PyAV
        audio = None
    if audio is None:
        try:
            audio = _decode_av(source, sample_rate)
        except Exception as exc:
            raise AudioError(f"{name}: cannot decode audio ({_first_line(exc)})") from None
    if audio.size == 0:
        raise AudioError(f"{name}: audio file holds no samples")
    return slice_audio(audio, start_time, end_time, sample_rate, name)


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
    if isinstance(source, (str, Path)):
        try:
            import soundfile

            info = soundfile.info(str(source))
            if info.frames > 0:
                return info.frames / info.samplerate
        except Exception:
            pass
    return len(load_audio(source)) / SAMPLE_RATE


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM wav."""
    import soundfile

    soundfile.write(str(path), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")


def _decode_soundfile(source: AudioSource, sample_rate: int) -> np.ndarray:
    import soundfile

    data, rate = soundfile.read(_as_file(source), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if rate != sample_rate:
        mono = resample(mono, rate, sample_rate)
    return mono.astype(np.float32, copy=False)


def _decode_av(source: AudioSource, sample_rate: int) -> np.ndarray:
    import av

    chunks: list[np.ndarray] = []
    with av.open(_as_file(source), mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


def resample(audio: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited polyphase resampling."""
    if orig_rate == new_rate:
        return audio
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(orig_rate), int(new_rate))
    return resample_poly(audio, new_rate // g, orig_rate // g).astype(np.float32)


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
