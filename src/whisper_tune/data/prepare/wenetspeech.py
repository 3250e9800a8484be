"""WenetSpeech: the corpus' ``WenetSpeech.json`` → one JSONL of slices per requested subset.

The JSON holds ``audios[]`` with ``aid``, ``path`` (a long opus file), ``duration`` and
``segments[]`` of ``sid``, ``begin_time``, ``end_time``, ``text``, ``confidence`` and
``subsets`` (``"{S}"``, ``"{M}"``, ``"{L}"``, ``"{W}"``, ``"{DEV}"``, ``"{TEST_NET}"``,
``"{TEST_MEETING}"``). The file is streamed, one audio at a time, so its size does not matter.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from whisper_tune.data.manifest import Utterance
from whisper_tune.data.prepare.common import ManifestWriter, PrepareReport, merge_timed
from whisper_tune.data.prepare.json_stream import iter_json_array
from whisper_tune.errors import WhisperTuneError

OUTPUT_NAMES = {
    "S": "train_s",
    "M": "train_m",
    "L": "train_l",
    "W": "train_w",
    "DEV": "dev",
    "TEST_NET": "test_net",
    "TEST_MEETING": "test_meeting",
}
DEFAULT_SUBSETS = ("L", "DEV", "TEST_NET", "TEST_MEETING")


def parse_subsets(subsets: str | Iterable[str]) -> tuple[str, ...]:
    """Accept ``"S,DEV"``, ``["{S}", "dev"]`` ...; raise on a name WenetSpeech does not have."""
    items = subsets.split(",") if isinstance(subsets, str) else list(subsets)
    names = tuple(dict.fromkeys(item.strip().strip("{}").upper() for item in items if item.strip()))
    unknown = [name for name in names if name not in OUTPUT_NAMES]
    if unknown or not names:
        raise WhisperTuneError(
            f"unknown WenetSpeech subset(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(OUTPUT_NAMES)}"
        )
    return names


def prepare_wenetspeech(
    wenetspeech_json: str | Path,
    audio_dir: str | Path | None = None,
    annotation_dir: str | Path = "dataset",
    subsets: str | Iterable[str] = DEFAULT_SUBSETS,
    min_confidence: float = 0.95,
    timestamps: bool = False,
    max_duration: float = 30.0,
    overwrite: bool = False,
) -> PrepareReport:
    """Write ``<annotation_dir>/<subset>.jsonl`` (train_l.jsonl, dev.jsonl, test_net.jsonl ...).

    Audio paths in the JSON are relative to ``audio_dir`` (default: the JSON's folder).
    Segments below ``min_confidence`` are dropped. With ``timestamps``, consecutive segments
    of one recording are merged into windows of at most ``max_duration`` seconds carrying
    per-segment ``sentences`` (the seed's timestamp training data).
    """
    json_path = Path(wenetspeech_json)
    base = Path(audio_dir) if audio_dir is not None else json_path.parent
    if not 0.0 <= min_confidence <= 1.0:
        raise WhisperTuneError(f"min_confidence must be within 0..1, got {min_confidence}")
    report = PrepareReport()
    writers: dict[str, ManifestWriter] = {}
    for name in parse_subsets(subsets):
        output = Path(annotation_dir) / f"{OUTPUT_NAMES[name]}.jsonl"
        if output.exists() and not overwrite:
            report.skipped.append(str(output))
        else:
            writers[name] = ManifestWriter(output)
    if not writers:
        return report
    low_confidence = 0
    try:
        size = json_path.stat().st_size if json_path.is_file() else None
        with tqdm(total=size, desc="WenetSpeech.json", unit="B", unit_scale=True) as progress:
            for index, (item, bytes_read) in enumerate(iter_json_array(json_path, "audios")):
                progress.update(bytes_read - progress.n)
                audio = _audio_entry(item, json_path, index)
                path = base / audio["path"]
                if not path.is_file():
                    report.problems.append(
                        f"{path}: audio file not found ({len(audio['segments'])} segments)"
                    )
                    continue
                segments = [
                    _segment(s, json_path, audio["aid"], str(path)) for s in audio["segments"]
                ]
                segments.sort(key=lambda s: s[0].start_time)
                low_confidence += sum(confidence < min_confidence for _, confidence, _ in segments)
                for name, writer in writers.items():
                    for run in _runs(segments, name, min_confidence):
                        for utterance in merge_timed(run, max_duration) if timestamps else run:
                            writer.write(utterance)
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for writer in writers.values():
        report.outputs[str(writer.path)] = writer.commit()
    report.notes.append(f"{low_confidence} segments below confidence {min_confidence} dropped")
    return report


def _runs(
    segments: list[tuple[Utterance, float, set[str]]], subset: str, min_confidence: float
) -> list[list[Utterance]]:
    """Split a recording's segments into runs kept for ``subset`` with nothing left out between."""
    runs: list[list[Utterance]] = [[]]
    for utterance, confidence, subsets in segments:
        if subset in subsets and confidence >= min_confidence:
            runs[-1].append(utterance)
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def _audio_entry(item: object, json_path: Path, index: int) -> dict:
    where = f"{json_path}: audios[{index}]"
    if not isinstance(item, dict):
        raise WhisperTuneError(f"{where}: expected an object")
    for key, kind in (("aid", str), ("path", str), ("segments", list)):
        if not isinstance(item.get(key), kind):
            raise WhisperTuneError(f"{where}: missing or bad field {key!r}")
    return item


def _segment(
    item: object, json_path: Path, aid: str, audio_path: str
) -> tuple[Utterance, float, set[str]]:
    where = f"{json_path}: audio {aid}"
    if not isinstance(item, dict):
        raise WhisperTuneError(f"{where}: a segment is not an object")
    where = f"{where} segment {item.get('sid', '?')}"
    begin, end = item.get("begin_time"), item.get("end_time")
    text, confidence = item.get("text"), item.get("confidence", 1.0)
    if not all(isinstance(v, (int, float)) for v in (begin, end, confidence)) or end <= begin:
        raise WhisperTuneError(f"{where}: needs numeric begin_time < end_time and confidence")
    if not isinstance(text, str):
        raise WhisperTuneError(f"{where}: field 'text' must be a string")
    subsets = item.get("subsets", [])
    if not isinstance(subsets, list):
        raise WhisperTuneError(f"{where}: field 'subsets' must be a list")
    utterance = Utterance(
        audio_path=audio_path,
        sentence=text,
        start_time=round(float(begin), 3),
        end_time=round(float(end), 3),
        duration=round(float(end) - float(begin), 3),
        language="zh",
        source=where,
    )
    return utterance, float(confidence), {str(s).strip("{}").upper() for s in subsets}
