"""``prepare shard`` / ``prepare unshard``: JSONL manifest ⇄ WebDataset-style tar shards.

Writing is resumable: shard ``k`` always holds the same samples for the same manifest and
seed, each shard is renamed into place only when complete, and a re-run skips finished
shards. Slices of one long recording are decoded in a single pass over it.
"""

from __future__ import annotations

import io
import json
import tarfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from whisper_tune.audio import SAMPLE_RATE, load_audio
from whisper_tune.data.manifest import Utterance, parse_record, write_manifest
from whisper_tune.data.prepare.common import PrepareReport
from whisper_tune.data.prepare.long_audio import iter_spans
from whisper_tune.data.shards import FORMAT, INDEX_NAME, iter_shard_records
from whisper_tune.errors import ManifestError, WhisperTuneError

AUDIO_FORMATS = ("flac", "wav", "opus")


def encode_audio(audio: np.ndarray, audio_format: str = "flac") -> bytes:
    """Encode 16 kHz mono float32 samples as flac or wav (16-bit) or opus (ogg, 32 kbit/s)."""
    buffer = io.BytesIO()
    if audio_format in ("flac", "wav"):
        import soundfile

        subtype = "PCM_16"
        soundfile.write(
            buffer, np.clip(audio, -1, 1), SAMPLE_RATE, format=audio_format, subtype=subtype
        )
        return buffer.getvalue()
    if audio_format != "opus":
        raise WhisperTuneError(f"unknown audio format {audio_format!r}; use one of {AUDIO_FORMATS}")
    import av

    with av.open(buffer, mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=SAMPLE_RATE)
        stream.layout = "mono"
        stream.bit_rate = 32000
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


@dataclass
class _Plan:
    """Where each valid manifest line sits in the file, grouped by recording."""

    offsets: array = field(default_factory=lambda: array("q"))  # byte offset of each line
    numbers: array = field(default_factory=lambda: array("q"))  # its 1-based line number
    groups: array = field(default_factory=lambda: array("q"))  # first line index of each group


def write_shards(
    manifest: str | Path,
    output_dir: str | Path,
    samples_per_shard: int = 1000,
    audio_format: str = "flac",
    shuffle: bool = True,
    seed: int = 0,
    skip_bad: bool = False,
    overwrite: bool = False,
) -> PrepareReport:
    """Pack a JSONL manifest's utterances, cut and encoded, into ``output_dir/shard-*.tar``.

    With ``shuffle``, recordings (a whole file, or all consecutive slices of one long file)
    are put in a seeded random order, so a reader's shuffle buffer mixes speakers well.
    A malformed line or undecodable audio stops the run unless ``skip_bad`` counts it.
    """
    if audio_format not in AUDIO_FORMATS:
        raise WhisperTuneError(f"unknown audio format {audio_format!r}; use one of {AUDIO_FORMATS}")
    if samples_per_shard < 1:
        raise WhisperTuneError("samples_per_shard must be at least 1")
    source, out = Path(manifest), Path(output_dir)
    report = PrepareReport()
    plan = _plan(source, skip_bad, report)
    group_order = np.arange(len(plan.groups))
    if shuffle:
        group_order = np.random.default_rng(seed).permutation(len(plan.groups))
    total = len(plan.offsets)
    shard_count = (total + samples_per_shard - 1) // samples_per_shard
    out.mkdir(parents=True, exist_ok=True)
    _check_plan(
        out,
        {
            "source": str(source.resolve()),
            "size": source.stat().st_size,
            "lines": total,
            "samples_per_shard": samples_per_shard,
            "audio_format": audio_format,
            "shuffle": shuffle,
            "seed": seed,
        },
        overwrite,
    )
    done = {k for k in range(shard_count) if not overwrite and _shard_path(out, k).is_file()}
    stats = {k: _shard_stats(_shard_path(out, k)) for k in done}
    writer: _ShardWriter | None = None
    position = 0
    with source.open("rb") as handle, tqdm(total=total, desc="shard", unit="utt") as progress:
        for group in group_order:
            lines = _group_lines(plan, int(group))
            first, position = position, position + len(lines)
            progress.update(len(lines))
            shards = {p // samples_per_shard for p in range(first, position)}
            if shards <= done:
                continue
            for offset, (utterance, audio) in enumerate(
                _decoded(handle, plan, lines, report, skip_bad)
            ):
                k = (first + offset) // samples_per_shard
                if k in done or audio is None:
                    continue
                if writer is None or writer.number != k:
                    if writer is not None:
                        stats[writer.number] = writer.close()
                    writer = _ShardWriter(out, k, audio_format)
                writer.add(first + offset, utterance, audio)
    if writer is not None:
        stats[writer.number] = writer.close()
    for k in range(shard_count):
        if k not in stats:  # every sample of this shard was bad and skipped
            stats[k] = _ShardWriter(out, k, audio_format).close()
    _write_index(out, source, audio_format, stats)
    samples = sum(count for count, _ in stats.values())
    report.outputs[str(out / INDEX_NAME)] = samples
    report.notes.append(
        f"{shard_count} shards, {sum(s for _, s in stats.values()) / 3600:.3f} hours"
        + (f" ({len(done)} already written)" if done else "")
    )
    return report


def unshard(shards: str | Path, output_dir: str | Path, name: str = "manifest") -> PrepareReport:
    """Write a corpus back out as audio files plus ``<output_dir>/<name>.jsonl``."""
    out = Path(output_dir)

    def utterances() -> Iterator[Utterance]:
        for utterance, data in tqdm(iter_shard_records(shards), desc="unshard", unit="utt"):
            shard, _, member = utterance.audio_path.rpartition("#")
            target = out / "audio" / Path(shard).stem / member
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.tmp")
                tmp.write_bytes(data.getvalue())
                tmp.replace(target)
            yield replace(utterance, audio_path=str(target))

    report = PrepareReport()
    output = out / f"{name}.jsonl"
    report.outputs[str(output)] = write_manifest(output, utterances())
    return report


def _plan(manifest: Path, skip_bad: bool, report: PrepareReport) -> _Plan:
    """Validate every line and group slices of the same recording (one pass, small memory)."""
    if not manifest.is_file():
        raise WhisperTuneError(f"{manifest}: manifest file not found")
    plan, base = _Plan(), manifest.resolve().parent
    previous: tuple[str, bool] | None = None
    offset = 0
    with manifest.open("rb") as handle:
        for number, raw in enumerate(tqdm(handle, desc="read manifest", unit="line"), 1):
            line_offset, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            try:
                utterance = _parse(raw, base, f"{manifest}:{number}")
            except ManifestError as exc:
                if not skip_bad:
                    raise
                report.problems.append(str(exc))
                continue
            sliced = utterance.start_time is not None or utterance.end_time is not None
            if not (sliced and previous == (utterance.audio_path, True)):
                plan.groups.append(len(plan.offsets))
            previous = (utterance.audio_path, sliced)
            plan.offsets.append(line_offset)
            plan.numbers.append(number)
    if not plan.offsets:
        raise WhisperTuneError(f"{manifest}: no usable utterances")
    return plan


def _parse(raw: bytes, base: Path, where: str) -> Utterance:
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{where}: not valid JSON ({exc})") from None
    return parse_record(record, base, where)


def _group_lines(plan: _Plan, group: int) -> range:
    end = plan.groups[group + 1] if group + 1 < len(plan.groups) else len(plan.offsets)
    return range(plan.groups[group], end)


def _decoded(handle, plan: _Plan, lines: range, report: PrepareReport, skip_bad: bool):
    """Yield ``(utterance, audio or None)`` for the lines of one group, in line order."""
    base = Path(handle.name).resolve().parent
    utterances = []
    for line in lines:
        handle.seek(plan.offsets[line])
        utterances.append(_parse(handle.readline(), base, f"{handle.name}:{plan.numbers[line]}"))
    try:
        if (
            len(utterances) == 1
            and utterances[0].start_time is None
            and utterances[0].end_time is None
        ):
            audios = [load_audio(utterances[0].audio_path)]
        else:
            spans = [(u.start_time, u.end_time) for u in utterances]
            audios = [None] * len(spans)
            for index, audio in iter_spans(utterances[0].audio_path, spans):
                audios[index] = audio
    except WhisperTuneError as exc:
        if not skip_bad:
            raise WhisperTuneError(f"{utterances[0].source}: {exc}") from None
        report.problems.extend(f"{u.source}: {exc}" for u in utterances)
        audios = [None] * len(utterances)
    yield from zip(utterances, audios, strict=True)


class _ShardWriter:
    """One shard being written to a hidden temporary file."""

    def __init__(self, out: Path, number: int, audio_format: str):
        self.number, self.audio_format = number, audio_format
        self.path = _shard_path(out, number)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        # closed in close(): a shard stays open while its samples stream in
        self.tar = tarfile.open(self.tmp, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.samples, self.seconds = 0, 0.0

    def add(self, position: int, utterance: Utterance, audio: np.ndarray) -> None:
        key = f"{position:012d}"
        seconds = round(len(audio) / SAMPLE_RATE, 3)
        record = replace(
            utterance,
            audio_path=f"{key}.{self.audio_format}",
            start_time=None,
            end_time=None,
            duration=seconds,
        ).to_json()
        origin = {
            "path": utterance.audio_path,
            "start_time": utterance.start_time,
            "end_time": utterance.end_time,
        }
        record["origin"] = {k: v for k, v in origin.items() if v is not None}
        self._member(f"{key}.json", json.dumps(record, ensure_ascii=False).encode("utf-8"))
        self._member(f"{key}.{self.audio_format}", encode_audio(audio, self.audio_format))
        self.samples += 1
        self.seconds += seconds

    def close(self) -> tuple[int, float]:
        self.tar.close()
        self.tmp.replace(self.path)
        return self.samples, round(self.seconds, 3)

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        self.tar.addfile(info, io.BytesIO(data))


def _check_plan(out: Path, plan: dict, overwrite: bool) -> None:
    """Refuse to resume into shards written with other settings (they would not line up)."""
    path = out / ".shard-plan.json"
    if path.is_file() and not overwrite:
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous != plan:
            changed = ", ".join(k for k in plan if previous.get(k) != plan[k])
            raise WhisperTuneError(
                f"{out}: holds shards written with other settings ({changed}); pass --overwrite "
                "or choose another output folder"
            )
    path.write_text(json.dumps(plan), encoding="utf-8")


def _shard_path(out: Path, number: int) -> Path:
    return out / f"shard-{number:06d}.tar"


def _shard_stats(path: Path) -> tuple[int, float]:
    """Sample count and seconds of a finished shard, from its JSON records."""
    samples, seconds = 0, 0.0
    with tarfile.open(path, mode="r|") as tar:
        for member in tar:
            if member.name.endswith(".json"):
                record = json.loads(tar.extractfile(member).read())
                samples += 1
                seconds += float(record.get("duration") or 0.0)
    return samples, round(seconds, 3)


def _write_index(
    out: Path, source: Path, audio_format: str, stats: dict[int, tuple[int, float]]
) -> None:
    shards = [
        {"name": _shard_path(out, k).name, "samples": count, "seconds": seconds}
        for k, (count, seconds) in sorted(stats.items())
    ]
    index = {
        "format": FORMAT,
        "version": 1,
        "audio_format": audio_format,
        "sample_rate": SAMPLE_RATE,
        "source": str(source),
        "samples": sum(s["samples"] for s in shards),
        "seconds": round(sum(s["seconds"] for s in shards), 3),
        "shards": shards,
    }
    tmp = out / f".{INDEX_NAME}.tmp"
    tmp.write_text(json.dumps(index, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(out / INDEX_NAME)
