"""The seed's JSONL manifest: one utterance per line, validated up front.

A line looks like::

    {"audio": {"path": "dataset/0.wav", "start_time": 0.0, "end_time": 7.37},
     "sentence": "近几年，不但我用书给女儿压岁。", "language": "zh", "duration": 7.37,
     "sentences": [{"start": 0, "end": 1.4, "text": "近几年，"}, ...]}

Relative audio paths resolve against the manifest's folder. An empty ``sentence`` marks a
no-speech sample. An optional ``prompt`` is the text said before this utterance, trained as
Whisper's previous-text prompt (``--prompt_ratio``). Every problem is reported as
``file:line: problem``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from whisper_tune.errors import ManifestError, WhisperTuneError
from whisper_tune.languages import language_code


@dataclass(frozen=True)
class TimedText:
    """One timestamped piece of an utterance (seconds relative to the utterance start)."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Utterance:
    """One manifest line, validated."""

    audio_path: str
    sentence: str
    start_time: float | None = None
    end_time: float | None = None
    duration: float | None = None
    language: str | None = None
    sentences: tuple[TimedText, ...] = ()
    source: str = ""  # "file:line", for error messages
    prompt: str | None = None  # previous text for Whisper's <|startofprev|> prompt

    @property
    def is_no_speech(self) -> bool:
        return not self.sentence.strip()

    def to_json(self, relative_to: Path | None = None) -> dict:
        """The seed's JSONL record for this utterance."""
        path = self.audio_path
        if relative_to is not None:
            with contextlib.suppress(ValueError):  # outside the folder: keep it absolute
                path = str(Path(path).resolve().relative_to(relative_to.resolve()))
        audio: dict = {"path": path}
        if self.start_time is not None:
            audio["start_time"] = self.start_time
        if self.end_time is not None:
            audio["end_time"] = self.end_time
        record: dict = {"audio": audio, "sentence": self.sentence}
        if self.sentences:
            record["sentences"] = [asdict(s) for s in self.sentences]
        if self.duration is not None:
            record["duration"] = round(self.duration, 3)
        if self.language:
            record["language"] = self.language
        if self.prompt is not None:
            record["prompt"] = self.prompt
        return record


@dataclass
class ManifestStats:
    """What filtering removed, reported to the user instead of dropped silently."""

    total: int = 0
    kept: int = 0
    too_short: int = 0
    too_long: int = 0
    no_speech: int = 0
    problems: list[str] = field(default_factory=list)

    def admit(self, utterance: Utterance, min_audio_len: float, max_audio_len: float) -> bool:
        """Whether ``utterance`` passes the length filter; counts why not, and no-speech."""
        if utterance.duration < min_audio_len:
            self.too_short += 1
            return False
        if utterance.duration > max_audio_len:
            self.too_long += 1
            return False
        self.no_speech += utterance.is_no_speech
        return True

    def summary(self) -> str:
        parts = [f"{self.kept}/{self.total} utterances kept"]
        if self.too_short:
            parts.append(f"{self.too_short} shorter than min_audio_len")
        if self.too_long:
            parts.append(f"{self.too_long} longer than max_audio_len")
        if self.no_speech:
            parts.append(f"{self.no_speech} no-speech samples (kept)")
        if self.problems:
            shown = "; ".join(self.problems[:3]) + ("; …" if len(self.problems) > 3 else "")
            parts.append(f"{len(self.problems)} bad lines skipped ({shown})")
        return ", ".join(parts)


def parse_record(record: object, base_dir: Path, where: str) -> Utterance:
    """Validate one decoded JSON record; raise ManifestError naming ``where`` on a problem."""
    if not isinstance(record, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(record).__name__}")
    audio = record.get("audio")
    if not isinstance(audio, dict):
        raise ManifestError(f"{where}: missing field 'audio' (an object with 'path')")
    path = audio.get("path")
    if not isinstance(path, str) or not path:
        raise ManifestError(f"{where}: missing field 'audio.path'")
    if "sentence" not in record:
        raise ManifestError(f"{where}: missing field 'sentence' (use \"\" for no-speech audio)")
    sentence = record["sentence"]
    if not isinstance(sentence, str):
        raise ManifestError(f"{where}: field 'sentence' must be a string")
    start = _optional_seconds(audio, "start_time", where, "audio.")
    end = _optional_seconds(audio, "end_time", where, "audio.")
    if start is not None and end is not None and end <= start:
        raise ManifestError(f"{where}: audio.end_time {end} is not after start_time {start}")
    duration = _optional_seconds(record, "duration", where)
    if duration is None and end is not None:
        duration = end - (start or 0.0)
    language = record.get("language")
    if language is not None:
        if not isinstance(language, str):
            raise ManifestError(f"{where}: field 'language' must be a string")
        try:
            language = language_code(language)
        except WhisperTuneError as exc:
            raise ManifestError(f"{where}: {exc}") from None
    prompt = record.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise ManifestError(f"{where}: field 'prompt' must be a string (the previous text)")
    resolved = Path(path).expanduser()
    if not resolved.is_absolute():
        resolved = base_dir / resolved
    return Utterance(
        audio_path=str(resolved),
        sentence=sentence,
        start_time=start,
        end_time=end,
        duration=duration,
        language=language,
        sentences=_parse_sentences(record.get("sentences"), where),
        source=where,
        prompt=prompt,
    )


def iter_manifest(path: str | Path) -> Iterator[Utterance | ManifestError]:
    """Yield each line's Utterance, or the ManifestError describing why it is bad."""
    manifest = Path(path)
    if not manifest.is_file():
        raise ManifestError(f"{manifest}: manifest file not found")
    base_dir = manifest.resolve().parent
    with manifest.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{manifest}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield ManifestError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
                continue
            try:
                yield parse_record(record, base_dir, where)
            except ManifestError as exc:
                yield exc


def read_manifest(
    path: str | Path,
    min_audio_len: float = 0.0,
    max_audio_len: float = 30.0,
    skip_bad: bool = False,
) -> tuple[list[Utterance], ManifestStats]:
    """Read and validate a whole manifest, filtering by duration.

    A bad line raises ManifestError unless ``skip_bad``, which counts it in the stats instead.
    Utterances without a known duration get one from the audio header.
    """
    from whisper_tune.audio import audio_duration

    stats = ManifestStats()
    kept: list[Utterance] = []
    for item in iter_manifest(path):
        stats.total += 1
        if isinstance(item, ManifestError):
            if not skip_bad:
                raise item
            stats.problems.append(str(item))
            continue
        utterance = item
        if utterance.duration is None:
            try:
                seconds = audio_duration(utterance.audio_path) - (utterance.start_time or 0.0)
            except WhisperTuneError as exc:
                problem = f"{utterance.source}: {exc}"
                if not skip_bad:
                    raise ManifestError(problem) from None
                stats.problems.append(problem)
                continue
            utterance = _with_duration(utterance, seconds)
        if not stats.admit(utterance, min_audio_len, max_audio_len):
            continue
        kept.append(utterance)
    stats.kept = len(kept)
    if stats.total == 0:
        raise ManifestError(f"{path}: manifest holds no utterances")
    return kept, stats


def write_manifest(path: str | Path, utterances: Iterable[Utterance]) -> int:
    """Write utterances as JSONL atomically, audio paths relative to the manifest's folder."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for utterance in utterances:
            record = utterance.to_json(relative_to=target.parent)
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(target)
    return count


def _with_duration(utterance: Utterance, seconds: float) -> Utterance:
    from dataclasses import replace

    return replace(utterance, duration=max(0.0, seconds))


def _optional_seconds(obj: dict, key: str, where: str, prefix: str = "") -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ManifestError(f"{where}: field '{prefix}{key}' must be a number of seconds >= 0")
    return float(value)


def _parse_sentences(value: object, where: str) -> tuple[TimedText, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ManifestError(f"{where}: field 'sentences' must be a list of {{start, end, text}}")
    pieces = []
    for index, item in enumerate(value):
        field_name = f"sentences[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise ManifestError(f"{where}: field '{field_name}' needs start, end and text")
        start = _optional_seconds(item, "start", where, f"{field_name}.")
        end = _optional_seconds(item, "end", where, f"{field_name}.")
        if start is None or end is None or end < start:
            raise ManifestError(f"{where}: field '{field_name}' needs start <= end")
        pieces.append(TimedText(start=start, end=end, text=item["text"]))
    return tuple(pieces)
