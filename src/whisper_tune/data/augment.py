"""On-the-fly audio augmentation from the seed's JSON config, reproducible from a seed.

The config is a JSON list of ``{"type", "params", "prob"}`` steps applied in order, each
with probability ``prob`` (default 1)::

    [{"type": "speed", "params": {"min_speed_rate": 0.9, "max_speed_rate": 1.1, "num_rates": 3},
      "prob": 0.5},
     {"type": "shift", "params": {"min_shift_ms": -5, "max_shift_ms": 5}, "prob": 0.0},
     {"type": "volume", "params": {"min_gain_dBFS": -15, "max_gain_dBFS": 15}, "prob": 0.5},
     {"type": "resample", "params": {"new_sample_rates": [8000, 16000, 24000]}, "prob": 0.0},
     {"type": "noise", "params": {"noise_dir": "dataset/noise", "min_snr_dB": 10,
      "max_snr_dB": 50}, "prob": 0.2}]

All randomness comes from the ``numpy.random.Generator`` passed in, so the same generator
state gives the same audio.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from whisper_tune.audio import SAMPLE_RATE, load_audio, resample
from whisper_tune.errors import WhisperTuneError

NOISE_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")
_SILENT_POWER = 1e-10
_SILENT_REFERENCE_DB = -30.0  # a silent clip gets noise as if it held speech at -30 dBFS
_NOISE_CACHE_SAMPLES = 64 * 1024 * 1024 // 4  # decoded noise kept per process (64 MB)

Step = Callable[[np.ndarray, np.random.Generator, int], np.ndarray]


@dataclass(frozen=True)
class Speed:
    """Play faster or slower (pitch follows), picking one of ``rates`` or uniformly."""

    low: float
    high: float
    num_rates: int

    def __call__(self, audio: np.ndarray, rng: np.random.Generator, rate: int) -> np.ndarray:
        if self.num_rates > 0:
            speed = float(rng.choice(np.linspace(self.low, self.high, self.num_rates)))
        else:
            speed = float(rng.uniform(self.low, self.high))
        if abs(speed - 1.0) < 1e-6:
            return audio
        return resample(audio, int(round(rate * speed)), rate)


@dataclass(frozen=True)
class Shift:
    """Move the audio earlier (positive ms) or later (negative ms), padding with silence."""

    low_ms: float
    high_ms: float

    def __call__(self, audio: np.ndarray, rng: np.random.Generator, rate: int) -> np.ndarray:
        samples = int(rng.uniform(self.low_ms, self.high_ms) * rate / 1000)
        shifted = np.zeros_like(audio)
        if abs(samples) >= len(audio):
            return shifted
        if samples > 0:
            shifted[:-samples] = audio[samples:]
        elif samples < 0:
            shifted[-samples:] = audio[:samples]
        else:
            shifted[:] = audio
        return shifted


@dataclass(frozen=True)
class Volume:
    """Change the gain by a uniform number of decibels."""

    low_db: float
    high_db: float

    def __call__(self, audio: np.ndarray, rng: np.random.Generator, rate: int) -> np.ndarray:
        return audio * np.float32(10.0 ** (rng.uniform(self.low_db, self.high_db) / 20.0))


@dataclass(frozen=True)
class Resample:
    """Pass the audio through another sample rate (8 kHz takes away the high band)."""

    rates: tuple[int, ...]

    def __call__(self, audio: np.ndarray, rng: np.random.Generator, rate: int) -> np.ndarray:
        via = int(rng.choice(self.rates))
        return resample(resample(audio, rate, via), via, rate)


@dataclass(frozen=True)
class Noise:
    """Add a random stretch of a random noise file at a uniform signal-to-noise ratio."""

    files: tuple[Path, ...]
    low_snr: float
    high_snr: float
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, audio: np.ndarray, rng: np.random.Generator, rate: int) -> np.ndarray:
        noise = self._noise(self.files[int(rng.integers(len(self.files)))], rate)
        snr = rng.uniform(self.low_snr, self.high_snr)
        if len(noise) < len(audio):
            noise = np.tile(noise, -(-len(audio) // len(noise)))[: len(audio)]
        else:
            start = int(rng.integers(len(noise) - len(audio) + 1))
            noise = noise[start : start + len(audio)]
        noise_power = float(np.mean(noise.astype(np.float64) ** 2))
        if noise_power < _SILENT_POWER or not len(audio):
            return audio
        signal_power = float(np.mean(audio.astype(np.float64) ** 2))
        if signal_power < _SILENT_POWER:
            signal_power = 10.0 ** (_SILENT_REFERENCE_DB / 10.0)
        gain = np.sqrt(signal_power / (noise_power * 10.0 ** (snr / 10.0)))
        return audio + (noise * gain).astype(np.float32)

    def _noise(self, path: Path, rate: int) -> np.ndarray:
        if path in self._cache:
            return self._cache[path]
        noise = load_audio(path, sample_rate=rate)
        if sum(map(len, self._cache.values())) + len(noise) <= _NOISE_CACHE_SAMPLES:
            self._cache[path] = noise
        return noise


@dataclass(frozen=True)
class Augmenter:
    """Apply each ``(prob, step)`` in order; ``augmenter(audio, rng)`` returns new audio."""

    steps: tuple[tuple[float, Step], ...]
    sample_rate: int = SAMPLE_RATE

    def __call__(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.asarray(audio, dtype=np.float32)
        for prob, step in self.steps:
            if rng.random() < prob:
                out = step(out, rng, self.sample_rate)
        return out.astype(np.float32, copy=False)


def load_augmenter(config_path: str | Path, sample_rate: int = SAMPLE_RATE) -> Augmenter:
    """Read the seed's augmentation JSON; raise WhisperTuneError naming any bad entry."""
    path = Path(config_path)
    if not path.is_file():
        raise WhisperTuneError(f"{path}: augmentation config not found")
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WhisperTuneError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(items, list):
        raise WhisperTuneError(f"{path}: expected a JSON list of {{type, params, prob}}")
    steps = []
    for index, item in enumerate(items):
        where = f"{path}: item {index}"
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise WhisperTuneError(f"{where}: expected an object with a 'type'")
        kind = item["type"]
        if kind not in _BUILDERS:
            raise WhisperTuneError(
                f"{where}: unknown augmentation type {kind!r}; use one of {', '.join(_BUILDERS)}"
            )
        where = f"{where} ({kind})"
        extra = set(item) - {"type", "params", "prob"}
        if extra:
            raise WhisperTuneError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        prob = _number(item.get("prob", 1.0), "prob", where)
        if not 0.0 <= prob <= 1.0:
            raise WhisperTuneError(f"{where}: prob must be within 0..1, got {prob}")
        params = item.get("params", {})
        if not isinstance(params, dict):
            raise WhisperTuneError(f"{where}: 'params' must be an object")
        steps.append((prob, _BUILDERS[kind](_Params(params, where), path.parent)))
    return Augmenter(tuple(steps), sample_rate)


class _Params:
    """Typed access to one step's params; every key must be used, every range ordered."""

    def __init__(self, values: dict, where: str):
        self.values, self.where, self.used = values, where, set()

    def number(self, key: str, default: float) -> float:
        self.used.add(key)
        return _number(self.values.get(key, default), key, self.where)

    def ordered(self, low_key: str, high_key: str, low: float, high: float) -> tuple[float, float]:
        lo, hi = self.number(low_key, low), self.number(high_key, high)
        if lo > hi:
            raise WhisperTuneError(f"{self.where}: {low_key} {lo:g} is above {high_key} {hi:g}")
        return lo, hi

    def get(self, key: str, default: object = None) -> object:
        self.used.add(key)
        return self.values.get(key, default)

    def done(self) -> None:
        unknown = set(self.values) - self.used
        if unknown:
            raise WhisperTuneError(
                f"{self.where}: unknown param(s) {', '.join(sorted(unknown))}; "
                f"expected {', '.join(sorted(self.used))}"
            )

    def fail(self, problem: str) -> None:
        raise WhisperTuneError(f"{self.where}: {problem}")


def _speed(params: _Params, _: Path) -> Speed:
    low, high = params.ordered("min_speed_rate", "max_speed_rate", 0.9, 1.1)
    num_rates = params.number("num_rates", 3)
    params.done()
    if low <= 0:
        params.fail(f"speed rates must be above 0, got {low:g}")
    if num_rates < 0 or num_rates != int(num_rates):
        params.fail(f"num_rates must be a whole number >= 0 (0 = any rate), got {num_rates:g}")
    return Speed(low, high, int(num_rates))


def _shift(params: _Params, _: Path) -> Shift:
    step = Shift(*params.ordered("min_shift_ms", "max_shift_ms", -5.0, 5.0))
    params.done()
    return step


def _volume(params: _Params, _: Path) -> Volume:
    step = Volume(*params.ordered("min_gain_dBFS", "max_gain_dBFS", -15.0, 15.0))
    params.done()
    return step


def _resample(params: _Params, _: Path) -> Resample:
    rates = params.get("new_sample_rates", [8000, 16000, 24000])
    params.done()
    if not isinstance(rates, list) or not rates:
        params.fail("new_sample_rates must be a non-empty list of sample rates")
    for value in rates:
        if isinstance(value, bool) or not isinstance(value, int) or not 1000 <= value <= 192000:
            params.fail(f"sample rate {value!r} is not a whole number of Hz in 1000..192000")
    return Resample(tuple(rates))


def _noise(params: _Params, config_dir: Path) -> Noise:
    low, high = params.ordered("min_snr_dB", "max_snr_dB", 10.0, 50.0)
    folder = params.get("noise_dir")
    params.done()
    if not isinstance(folder, str) or not folder:
        params.fail("needs 'noise_dir', a folder of noise audio files")
    candidates = [Path(folder).expanduser()]
    if not candidates[0].is_absolute():
        candidates.append(config_dir / folder)  # relative to the working folder, then the config
    found = next((c for c in candidates if c.is_dir()), None)
    if found is None:
        params.fail(f"noise_dir not found (looked in {', '.join(map(str, candidates))})")
    files = tuple(sorted(p for p in found.rglob("*") if p.suffix.lower() in NOISE_SUFFIXES))
    if not files:
        params.fail(f"noise_dir {found} holds no audio files ({', '.join(NOISE_SUFFIXES)})")
    return Noise(files, low, high)


_BUILDERS: dict[str, Callable[[_Params, Path], Step]] = {
    "speed": _speed,
    "shift": _shift,
    "volume": _volume,
    "resample": _resample,
    "noise": _noise,
}


def _number(value: object, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WhisperTuneError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)
