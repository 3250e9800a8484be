"""Speech synthesis for demos and tests, fully offline.

English is spoken by ``hibari-tts`` with the one voice that ships inside its wheel (never a
downloaded one); Mandarin by espeak-ng's ``cmn-latn-pinyin`` voice reading tone-numbered pinyin
from ``pypinyin``; any other language by the espeak-ng voice of that name. Every function returns
16 kHz mono float32, and a ``seed`` makes the result bit-identical across calls.

hibari-tts and pypinyin come with the ``demo`` extra (``pip install 'whisper-tune[demo]'``) and
are imported only where they are used; without them this module says so in one line.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from whisper_tune.audio import SAMPLE_RATE, load_audio, resample, write_wav
from whisper_tune.data.manifest import Utterance
from whisper_tune.errors import WhisperTuneError
from whisper_tune.languages import language_code, language_name

log = logging.getLogger(__name__)

MIN_SPEED, MAX_SPEED = 0.5, 2.0
ESPEAK_WORDS_PER_MINUTE = 175  # espeak-ng's default rate: speed 1.0 for most voices
# one "word" is one syllable for the pinyin voice; 175 (2.9 syllables/s) is slow for Mandarin
MANDARIN_VOICE = "cmn-latn-pinyin"
ESPEAK_RATE_BY_VOICE = {MANDARIN_VOICE: 210}
ENGLISH_FALLBACK_VOICE = "en-us"
_PINYIN_SYLLABLE = re.compile(r"[a-zü]+[1-5]")
_NOT_WORD = re.compile(r"[^\w.]+|(?<!\d)\.|\.(?!\d)")  # punctuation; keeps the dot inside "3.5"
DEMO_EXTRA = "pip install 'whisper-tune[demo]'"


def synthesize(
    text: str,
    language: str = "en",
    speed: float = 1.0,
    noise_db: float | None = None,
    seed: int | None = None,
) -> np.ndarray:
    """Speak ``text`` and return 16 kHz mono float32 samples.

    ``speed`` scales the speaking rate (0.5 slow .. 2.0 fast) through the engine, so pitch is
    kept. ``noise_db`` adds white noise at that signal-to-noise ratio in dB (e.g. 20 is light
    hiss); ``None`` adds none. ``seed`` fixes both the voice's own randomness and the noise.
    """
    if not text or not text.strip():
        raise WhisperTuneError("cannot synthesize empty text")
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise WhisperTuneError(f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {speed}")
    code = language_code(language)
    if code is None:
        raise WhisperTuneError("synthesis needs a language such as 'en' or 'zh', not auto-detect")
    if code == "en":
        audio = _english(text, speed, seed)
    elif code == "zh":
        audio = _espeak(to_pinyin(text), MANDARIN_VOICE, speed)
    else:
        audio = _espeak(text, code, speed, language_name(code))
    if audio.size == 0 or not np.any(audio):
        raise WhisperTuneError(f"no speech was produced for {text!r}")
    if noise_db is not None:
        audio = add_noise(
            audio, noise_db, np.random.default_rng(None if seed is None else [seed, 1])
        )
    return audio


def synthesize_to_file(
    path: str | Path,
    text: str,
    language: str = "en",
    speed: float = 1.0,
    noise_db: float | None = None,
    seed: int | None = None,
) -> Path:
    """Synthesize ``text`` and write it atomically as a 16 kHz 16-bit wav; return the path."""
    path = Path(path)
    save_wav(path, synthesize(text, language, speed, noise_db, seed))
    return path


def spoken_sets(
    plan: Sequence[tuple[str, str]],
    language: str,
    folder: Path,
    rng: np.random.Generator,
    seed: int = 0,
) -> dict[str, list[Utterance]]:
    """Each ``(split, sentence)`` of ``plan`` spoken at a speed of 0.9-1.15 with 25-40 dB SNR
    hiss (both drawn from ``rng``) into ``folder/wav/<split>_<index>.wav`` (an existing file is
    kept and draws nothing); the utterances grouped by split, in plan order."""
    from tqdm import tqdm

    (folder / "wav").mkdir(parents=True, exist_ok=True)
    sets: dict[str, list[Utterance]] = {split: [] for split, _ in plan}
    for index, (split, sentence) in enumerate(tqdm(plan, desc="synthesising", unit="clip")):
        path = folder / "wav" / f"{split}_{index:03d}.wav"
        if not path.is_file():
            audio = synthesize(
                sentence,
                language,
                speed=float(rng.uniform(0.9, 1.15)),
                noise_db=float(rng.uniform(25, 40)),
                seed=seed + index,
            )
            write_wav(path, audio)
        sets[split].append(Utterance(str(path), sentence, language=language))
    return sets


def no_speech_clips(
    count: int, language: str, folder: Path, rng: np.random.Generator, seed: int = 0
) -> list[Utterance]:
    """``count`` pink-noise clips of 1-4 s (lengths drawn from ``rng``) with an empty
    transcript, written as ``folder/wav/train_nospeech_<i>.wav``: they teach silence."""
    clips = []
    for index in range(count):
        path = folder / "wav" / f"train_nospeech_{index}.wav"
        seconds = float(rng.uniform(1.0, 4.0))
        write_wav(path, noise_clip(seconds, seed=seed + 1000 + index))
        clips.append(Utterance(str(path), "", language=language))
    return clips


def save_wav(path: str | Path, audio: np.ndarray) -> Path:
    """Write 16 kHz ``audio`` to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".wav", dir=path.parent)
    os.close(fd)
    try:
        write_wav(tmp, audio, SAMPLE_RATE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def silence(seconds: float) -> np.ndarray:
    """Digital silence of the given length."""
    return np.zeros(_samples(seconds), dtype=np.float32)


def noise_clip(seconds: float, seed: int | None = None, level_db: float = -50.0) -> np.ndarray:
    """Low-level pink (1/f) noise with an RMS of ``level_db`` dBFS: a no-speech sample."""
    rng = np.random.default_rng(seed)
    n = _samples(seconds)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.arange(spectrum.size, dtype=np.float64)
    freqs[0] = 1.0
    noise = np.fft.irfft(spectrum / np.sqrt(freqs), n=n)
    return _scale_to_rms(noise, 10 ** (level_db / 20)).astype(np.float32)


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white noise so that signal power / noise power equals ``snr_db`` dB."""
    power = float(np.mean(np.square(audio, dtype=np.float64)))
    noise = _scale_to_rms(rng.standard_normal(audio.size), np.sqrt(power / 10 ** (snr_db / 10)))
    return np.clip(audio + noise, -1.0, 1.0).astype(np.float32)


def concatenate(clips: Sequence[np.ndarray], gap_seconds: float = 0.5) -> np.ndarray:
    """Join clips with ``gap_seconds`` of silence between them (e.g. a long file from sentences)."""
    if not clips:
        raise WhisperTuneError("nothing to concatenate")
    gap = silence(gap_seconds)
    parts: list[np.ndarray] = []
    for i, clip in enumerate(clips):
        if i:
            parts.append(gap)
        parts.append(np.asarray(clip, dtype=np.float32))
    return np.concatenate(parts)


def clip_spans(clips: Sequence[np.ndarray], gap_seconds: float = 0.5) -> list[tuple[float, float]]:
    """(start, end) seconds of each clip inside ``concatenate(clips, gap_seconds)``."""
    spans, start = [], 0
    for clip in clips:
        spans.append((start / SAMPLE_RATE, (start + len(clip)) / SAMPLE_RATE))
        start += len(clip) + _samples(gap_seconds)
    return spans


def to_pinyin(text: str) -> str:
    """Chinese text as tone-numbered pinyin for espeak-ng (punctuation dropped, digits kept)."""
    try:
        from pypinyin import Style, lazy_pinyin
    except ModuleNotFoundError as exc:
        raise _missing_extra(exc, "pypinyin", "Mandarin") from None
    words: list[str] = []
    for token in lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True):
        if _PINYIN_SYLLABLE.fullmatch(token):
            words.append(token)
        else:  # digits and Latin letters: espeak's pinyin voice reads them in Mandarin
            words.extend(_NOT_WORD.sub(" ", token).split())
    return " ".join(words)


def _english(text: str, speed: float, seed: int | None) -> np.ndarray:
    """hibari's bundled voice; espeak-ng English if hibari is unavailable or fails."""
    try:
        tts = _hibari()
        audio = tts(text, speed=speed, seed=seed)
    except WhisperTuneError:
        raise
    except Exception as exc:  # a broken hibari install must not stop a demo that espeak can serve
        log.warning("hibari-tts failed (%s); using espeak-ng English instead", exc)
        return _espeak(text, ENGLISH_FALLBACK_VOICE, speed)
    return resample(np.asarray(audio, dtype=np.float32), tts.sample_rate, SAMPLE_RATE)


@functools.lru_cache(maxsize=1)
def _hibari():
    """Load hibari once, from the ONNX file inside its wheel: no code path that downloads."""
    try:
        from hibari import Hibari
        from hibari.voices import ASSETS, DEFAULT, VOICES
    except ModuleNotFoundError as exc:
        raise _missing_extra(exc, "hibari", "English", "hibari-tts") from None

    voice = VOICES[DEFAULT]
    if not voice.get("bundled"):
        raise RuntimeError(f"hibari's default voice {DEFAULT!r} is not bundled in the package")
    return Hibari(voice=DEFAULT, model=os.path.join(ASSETS, voice["file"]))


def _missing_extra(
    exc: ModuleNotFoundError, module: str, language: str, distribution: str | None = None
) -> Exception:
    """A one-line error naming the extra when ``module`` itself is absent; else ``exc`` (a
    broken install, which the English path answers with espeak-ng)."""
    if exc.name != module:
        return exc
    return WhisperTuneError(
        f"{language} speech synthesis needs {distribution or module}, part of the demo extra: "
        f"{DEMO_EXTRA}"
    )


def _espeak(text: str, voice: str, speed: float, language: str | None = None) -> np.ndarray:
    if not text.strip():
        raise WhisperTuneError("nothing speakable in the text (only punctuation?)")
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise WhisperTuneError(
            "espeak-ng is not installed; it speaks every language but English "
            "(Debian/Ubuntu: apt-get install espeak-ng)"
        )
    rate = str(round(ESPEAK_RATE_BY_VOICE.get(voice, ESPEAK_WORDS_PER_MINUTE) * speed))
    proc = subprocess.run(
        [exe, "-v", voice, "-s", rate, "-b", "1", "--stdout"],
        input=text.encode("utf-8"),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout:
        message = proc.stderr.decode("utf-8", "replace").strip() or f"exit code {proc.returncode}"
        if "voice does not exist" in message:
            raise WhisperTuneError(f"espeak-ng has no voice for {language or voice!r} ({voice})")
        raise WhisperTuneError(f"espeak-ng failed with voice {voice!r}: {message}")
    return load_audio(proc.stdout)


def _scale_to_rms(signal: np.ndarray, rms: float) -> np.ndarray:
    current = float(np.sqrt(np.mean(np.square(signal))))
    return signal * (rms / current) if current > 0 else signal


def _samples(seconds: float) -> int:
    if seconds < 0:
        raise WhisperTuneError(f"duration must not be negative, got {seconds}")
    return int(round(seconds * SAMPLE_RATE))
