"""Sharded corpora for 10k+ hours: WebDataset-style tar shards, streamed with bounded memory.

A corpus is a folder::

    corpus/index.json            {"format": "whisper-tune-shards", "shards": [...], ...}
    corpus/shard-000000.tar      000000000000.json, 000000000000.flac, 000000000001.json, ...

Each sample is a JSON record in the manifest's own format (``audio.path`` names the audio
member; ``origin`` keeps the source file and slice) next to its audio, already cut to the
utterance and encoded at 16 kHz. Shards are plain uncompressed tars read front to back, so
any tar tool, the ``webdataset`` library, or a pipe from object storage can read them too.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from whisper_tune.audio import load_audio
from whisper_tune.data.manifest import Utterance, parse_record
from whisper_tune.data.shuffle import buffer_shuffled
from whisper_tune.errors import ManifestError, WhisperTuneError

FORMAT = "whisper-tune-shards"
INDEX_NAME = "index.json"
AUDIO_EXTENSIONS = ("flac", "wav", "opus", "ogg", "mp3")


@dataclass(frozen=True)
class ShardInfo:
    path: Path
    samples: int
    seconds: float


@dataclass(frozen=True)
class ShardIndex:
    """The shards of a corpus with their sample counts (to size epochs and steps)."""

    root: Path
    shards: tuple[ShardInfo, ...]
    audio_format: str

    @property
    def samples(self) -> int:
        return sum(shard.samples for shard in self.shards)

    @property
    def seconds(self) -> float:
        return sum(shard.seconds for shard in self.shards)


def is_sharded_corpus(path: str | Path) -> bool:
    """True for a shard folder (with ``index.json``), its ``index.json``, or one ``.tar`` shard."""
    path = Path(path)
    if path.is_file() and path.suffix == ".tar":
        return True
    index = path / INDEX_NAME if path.is_dir() else path
    if index.name != INDEX_NAME or not index.is_file():
        return False
    try:
        return json.loads(index.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def read_shard_index(path: str | Path) -> ShardIndex:
    """Read a corpus' ``index.json`` (or describe a single ``.tar`` shard)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".tar":
        samples = sum(1 for _ in _iter_tar(path))
        return ShardIndex(path.parent, (ShardInfo(path, samples, 0.0),), "")
    index_path = path / INDEX_NAME if path.is_dir() else path
    if not is_sharded_corpus(index_path):
        raise WhisperTuneError(f"{path}: not a sharded corpus (no {INDEX_NAME} of {FORMAT})")
    index = json.loads(index_path.read_text(encoding="utf-8"))
    root = index_path.parent
    try:
        shards = tuple(
            ShardInfo(root / item["name"], int(item["samples"]), float(item["seconds"]))
            for item in index["shards"]
        )
    except (KeyError, TypeError, ValueError):
        raise WhisperTuneError(f"{index_path}: malformed shard list") from None
    missing = [str(shard.path) for shard in shards if not shard.path.is_file()]
    if missing:
        raise WhisperTuneError(f"{index_path}: shard file(s) missing: {', '.join(missing[:3])}")
    return ShardIndex(root, shards, str(index.get("audio_format", "")))


def iter_shard_samples(
    shards: str | Path,
    shuffle_buffer: int = 1000,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    epoch: int = 0,
    num_samples: int | None = None,
    min_audio_len: float = 0.0,
    max_audio_len: float | None = None,
) -> Iterator[tuple[Utterance, np.ndarray]]:
    """Stream ``(utterance, 16 kHz float32 audio)`` from a sharded corpus.

    Memory stays bounded by ``shuffle_buffer`` encoded samples. Shard order is shuffled per
    ``(seed, epoch)`` identically for every reader; reader ``rank`` of ``world_size`` then
    reads its own shards, or, when there are fewer shards than readers, keeps its own share
    of every shard's samples, so the readers together see each sample once per epoch. Inside
    DataLoader workers, make each worker a reader: ``rank = process_rank * num_workers +
    worker_id`` and ``world_size = processes * num_workers``. ``num_samples`` makes the reader
    yield exactly that many samples (going on into the next epochs' order when its part runs
    out), so all readers take the same number of steps; ``None`` reads its part once.
    Utterances outside ``[min_audio_len, max_audio_len]`` are skipped before decoding.
    """
    if not 0 <= rank < world_size:
        raise WhisperTuneError(f"rank {rank} is outside world_size {world_size}")
    index = read_shard_index(shards)
    if num_samples is not None and num_samples <= 0:
        return
    rng = np.random.default_rng([seed, epoch, rank])
    yielded = 0
    for pass_epoch in _epochs(epoch, num_samples is not None):
        raw = _filtered(
            _reader_samples(index, rank, world_size, seed, pass_epoch), min_audio_len, max_audio_len
        )
        seen = 0
        for utterance, data in buffer_shuffled(raw, shuffle_buffer, rng):
            seen += 1
            yield utterance, load_audio(data)
            yielded += 1
            if num_samples is not None and yielded >= num_samples:
                return
        if seen == 0:
            if num_samples:
                raise WhisperTuneError(
                    f"{index.root}: reader {rank} of {world_size} has no samples to yield"
                )
            return


def _epochs(first: int, repeat: bool) -> Iterator[int]:
    yield first
    while repeat:
        first += 1
        yield first


def _reader_samples(
    index: ShardIndex, part: int, parts: int, seed: int, epoch: int
) -> Iterator[tuple[Utterance, io.BytesIO]]:
    order = np.random.default_rng([seed, epoch]).permutation(len(index.shards))
    paths = [index.shards[i].path for i in order]
    if len(paths) >= parts:
        for path in paths[part::parts]:
            yield from _iter_tar(path)
        return
    count = 0
    for path in paths:
        for sample in _iter_tar(path):
            if count % parts == part:
                yield sample
            count += 1


def _filtered(samples, min_len: float, max_len: float | None):
    for utterance, data in samples:
        seconds = utterance.duration or 0.0
        if seconds >= min_len and (max_len is None or seconds <= max_len):
            yield utterance, data


def iter_shard_records(shards: str | Path) -> Iterator[tuple[Utterance, io.BytesIO]]:
    """Every sample of a corpus in stored order, audio still encoded (for unsharding)."""
    for shard in read_shard_index(shards).shards:
        yield from _iter_tar(shard.path)


def _iter_tar(path: Path) -> Iterator[tuple[Utterance, io.BytesIO]]:
    """Read one shard front to back; yield each sample with its encoded audio."""
    key, parts = None, {}
    try:
        with tarfile.open(path, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name.rsplit("/", 1)[-1]
                member_key, _, extension = name.partition(".")
                if member_key != key and key is not None:
                    yield _sample(path, key, parts)
                    parts = {}
                key = member_key
                parts[extension] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError) as exc:
        raise WhisperTuneError(f"{path}: cannot read shard ({exc})") from None
    if key is not None:
        yield _sample(path, key, parts)


def _sample(path: Path, key: str, parts: dict[str, bytes]) -> tuple[Utterance, io.BytesIO]:
    where = f"{path}:{key}"
    audio = [ext for ext in AUDIO_EXTENSIONS if ext in parts]
    if "json" not in parts or not audio:
        raise ManifestError(f"{where}: sample needs a .json record and an audio member")
    try:
        record = json.loads(parts["json"].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{where}: record is not valid JSON ({exc})") from None
    utterance = parse_record(record, path.parent, where)
    data = io.BytesIO(parts[audio[0]])
    data.name = f"{path}#{key}.{audio[0]}"
    return replace(utterance, audio_path=data.name), data
