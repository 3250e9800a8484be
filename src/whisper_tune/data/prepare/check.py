"""``prepare check``: validate a manifest line by line before training on it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from whisper_tune.audio import SAMPLE_RATE, audio_duration, load_audio
from whisper_tune.data.hf_datasets import DatasetOptions, iter_rows
from whisper_tune.data.manifest import Utterance, iter_manifest
from whisper_tune.data.prepare.long_audio import decoded_seconds
from whisper_tune.errors import ManifestError, WhisperTuneError

# Upper bounds (seconds) of the duration histogram's bins; the last bin is open.
BINS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0)
TOLERANCE = 0.2  # seconds a recorded duration may differ from the decoded audio
_SHOWN_PROBLEMS = 50


@dataclass
class CheckReport:
    """Everything ``prepare check`` found out about one manifest."""

    path: str
    lines: int = 0
    valid: int = 0
    seconds: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * (len(BINS) + 1))
    languages: Counter = field(default_factory=Counter)
    no_speech: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, utterance: Utterance, seconds: float) -> None:
        self.valid += 1
        self.seconds += seconds
        self.histogram[sum(seconds > bound for bound in BINS)] += 1
        self.languages[utterance.language or "(not set)"] += 1
        self.no_speech += utterance.is_no_speech

    def summary(self) -> str:
        lines = [
            f"{self.path}: {self.lines} lines, {self.valid} valid, "
            f"{self.seconds / 3600:.3f} hours ({self.seconds:.1f} s)",
            "durations:",
        ]
        labels = [f"0-{BINS[0]:g} s"]
        labels += [f"{lo:g}-{hi:g} s" for lo, hi in zip(BINS, BINS[1:], strict=False)]
        labels.append(f"> {BINS[-1]:g} s")
        top = max(self.histogram) or 1
        for label, count in zip(labels, self.histogram, strict=True):
            lines.append(f"  {label:>9} {count:8d} {'#' * round(30 * count / top)}")
        if self.histogram[-1]:
            lines.append(
                f"  ({self.histogram[-1]} longer than 30 s: training's default "
                "--max_audio_len 30 leaves them out)"
            )
        mix = ", ".join(f"{lang} {count}" for lang, count in self.languages.most_common())
        lines.append(f"languages: {mix or '-'}")
        lines.append(f"no-speech (empty sentence): {self.no_speech}")
        if self.problems:
            lines.append(f"problems: {len(self.problems)}")
            lines += [f"  {problem}" for problem in self.problems[:_SHOWN_PROBLEMS]]
            if len(self.problems) > _SHOWN_PROBLEMS:
                lines.append(f"  ... and {len(self.problems) - _SHOWN_PROBLEMS} more")
        else:
            lines.append("problems: none")
        return "\n".join(lines)


def check_manifest(path: str | Path, decode: bool = True) -> CheckReport:
    """Validate every line of ``path``; with ``decode``, decode every audio file too.

    Problems (malformed lines, missing or corrupt audio, slices past the end, durations that
    disagree with the audio) are collected with their ``file:line``, never raised.
    """
    manifest = Path(path)
    if not manifest.is_file():
        raise WhisperTuneError(f"{manifest}: manifest file not found")
    report = CheckReport(path=str(manifest))
    with manifest.open("rb") as handle:
        total = sum(1 for line in handle if line.strip())
    lengths: dict[str, float] = {}  # decoded seconds of the last long file seen
    for item in tqdm(iter_manifest(manifest), total=total, desc="check", unit="line"):
        report.lines += 1
        if isinstance(item, ManifestError):
            report.problems.append(str(item))
            continue
        try:
            seconds = _checked_seconds(item, decode, lengths)
        except WhisperTuneError as exc:
            report.problems.append(f"{item.source}: {exc}")
            continue
        report.add(item, seconds)
    return report


def check_dataset(spec: str, options: DatasetOptions, decode: bool = True) -> CheckReport:
    """:func:`check_manifest` for a datasets source: every row validated (text, language,
    audio), its audio decoded with ``decode`` (else its header read)."""
    from whisper_tune.audio import audio_duration

    report = CheckReport(path=spec)
    for item in tqdm(iter_rows(spec, "train", options), desc="check", unit="row"):
        report.lines += 1
        if isinstance(item, ManifestError):
            report.problems.append(str(item))
            continue
        try:
            if decode:
                seconds = len(load_audio(item.audio)) / SAMPLE_RATE
            else:
                seconds = audio_duration(item.audio)
        except WhisperTuneError as exc:
            report.problems.append(f"{item.utterance.source}: {exc}")
            continue
        report.add(item.utterance, seconds)
    return report


def _checked_seconds(utterance: Utterance, decode: bool, lengths: dict[str, float]) -> float:
    """The utterance's real length in seconds; raise WhisperTuneError on a problem."""
    if not Path(utterance.audio_path).is_file():
        raise WhisperTuneError(f"{utterance.audio_path}: audio file not found")
    if not decode:
        if utterance.duration is not None:
            return utterance.duration
        return audio_duration(utterance.audio_path) - (utterance.start_time or 0.0)
    sliced = utterance.start_time is not None or utterance.end_time is not None
    if sliced:
        if utterance.audio_path not in lengths:
            lengths.clear()  # slices of one recording sit together: decode it once
            lengths[utterance.audio_path] = decoded_seconds(utterance.audio_path)
        length = lengths[utterance.audio_path]
        start = utterance.start_time or 0.0
        end = length if utterance.end_time is None else utterance.end_time
        if start >= length:
            raise WhisperTuneError(
                f"slice starts at {start:g} s, after the audio's end ({length:.2f} s)"
            )
        if end > length + TOLERANCE:
            raise WhisperTuneError(
                f"slice ends at {end:g} s, after the audio's end ({length:.2f} s)"
            )
        seconds = min(end, length) - start
    else:
        seconds = len(load_audio(utterance.audio_path)) / SAMPLE_RATE
    if utterance.duration is not None and abs(utterance.duration - seconds) > TOLERANCE:
        raise WhisperTuneError(
            f"duration says {utterance.duration:g} s but the audio lasts {seconds:.2f} s"
        )
    return seconds
