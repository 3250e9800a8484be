"""Hugging Face ``datasets`` as training and evaluation data, beside JSONL manifests.

A source is a ``save_to_disk`` folder, ``.parquet``/``.arrow`` files, an ``audiofolder``
(``metadata.csv``/``metadata.jsonl`` naming audio files) or a Hub dataset
(``hf://datasets/NAME`` or ``--dataset_name``, with ``--dataset_config`` and ``--split``).
Each row becomes an :class:`~whisper_tune.data.manifest.Utterance` validated like a manifest
line (text, language, duration filters, no-speech rows), its audio decoded by
:mod:`whisper_tune.audio` from the row's bytes or file (the ``Audio`` feature is read with
``decode=False``, so neither torchcodec nor an ffmpeg binary is needed). ``--streaming``
reads rows as they come (an ``IterableDataset``) for corpora larger than the disk.

``datasets`` is an optional extra (``pip install 'whisper-tune[hub]'``), imported only here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from whisper_tune.data.manifest import ManifestStats, Utterance
from whisper_tune.data.shuffle import buffer_shuffled
from whisper_tune.errors import ManifestError, WhisperTuneError
from whisper_tune.options import option

HUB_PREFIX = "hf://datasets/"
# column names of Common Voice (path/audio, sentence, locale), FLEURS (audio,
# raw_transcription, language) and audiofolder (audio, transcription/text), first found wins
AUDIO_COLUMNS = ("audio", "path", "file")
TEXT_COLUMNS = ("sentence", "raw_transcription", "transcription", "text", "transcript")
LANGUAGE_COLUMNS = ("locale", "language")
METADATA_FILES = ("metadata.csv", "metadata.jsonl")
FILE_SUFFIXES = {".parquet": "parquet", ".arrow": "arrow"}
DEFAULT_SPLITS = {"train": "train", "eval": "test", "replay": "train", "regression": "test"}

_OPTIONS = {
    "dataset_name": (
        None,
        "a Hugging Face Hub dataset (e.g. mozilla-foundation/common_voice_17_0) used where "
        "the data option is not given: the same as hf://datasets/NAME",
    ),
    "dataset_config": (None, "the datasets config (subset) of a Hub dataset, e.g. zh-CN"),
    "split": (
        None,
        "the split of a datasets source (default: train for training data, test for "
        "evaluation data)",
    ),
    "audio_column": (
        None,
        "datasets sources: the audio column (default: the first of "
        + ", ".join(AUDIO_COLUMNS)
        + ")",
    ),
    "text_column": (
        None,
        "datasets sources: the transcript column (default: the first of "
        + ", ".join(TEXT_COLUMNS)
        + ": Common Voice, FLEURS and audiofolder names)",
    ),
    "streaming": (
        False,
        "datasets sources: read rows as they arrive instead of downloading the whole split "
        "first (corpora larger than the disk; training then needs --max_steps)",
    ),
}


def dataset_option(name: str, group: str | None = None) -> Any:
    """The field of one datasets option, declared once for every command that reads data."""
    default, text = _OPTIONS[name]
    return option(default, help=text, group=group)


@dataclass(frozen=True)
class DatasetOptions:
    """How to read a datasets source (the command's datasets options)."""

    dataset_config: str | None = dataset_option("dataset_config")
    split: str | None = dataset_option("split")
    audio_column: str | None = dataset_option("audio_column")
    text_column: str | None = dataset_option("text_column")
    streaming: bool = dataset_option("streaming")

    @classmethod
    def of(cls, config: Any) -> DatasetOptions:
        return cls(**{name: getattr(config, name) for name in cls.__dataclass_fields__})


def data_source(given: str | None, dataset_name: str | None) -> str | None:
    """The data option's value, or ``hf://datasets/NAME`` from ``--dataset_name``."""
    return given or (HUB_PREFIX + dataset_name if dataset_name else None)


def is_dataset_source(spec: str | Path) -> bool:
    """True for what :func:`open_dataset` reads (not a JSONL manifest or a shard corpus)."""
    text = str(spec)
    if text.startswith(HUB_PREFIX):
        return True
    path = Path(text)
    if path.is_file():
        return path.suffix in FILE_SUFFIXES
    if path.is_dir():
        return _disk_layout(path) is not None or bool(_data_files(path))
    return False


def open_dataset(spec: str, role: str, options: DatasetOptions):
    """The split of ``spec`` for ``role`` (train, eval ...), its audio column not decoded."""
    datasets = _import_datasets()
    split = options.split or DEFAULT_SPLITS.get(role, "train")
    try:
        dataset = _load(datasets, spec, split, options)
    except WhisperTuneError:
        raise
    except Exception as exc:  # datasets raises many kinds: name the source, not a traceback
        raise WhisperTuneError(f"{spec}: cannot load the dataset ({exc})") from None
    if isinstance(dataset, datasets.DatasetDict | datasets.IterableDatasetDict):
        if split not in dataset:
            raise WhisperTuneError(
                f"{spec}: no split {split!r} (has {', '.join(dataset)}); pick one with --split"
            )
        dataset = dataset[split]
    if options.streaming and isinstance(dataset, datasets.Dataset):
        dataset = dataset.to_iterable_dataset()
    columns = _columns(dataset)
    audio = _column(columns, options.audio_column, AUDIO_COLUMNS, "audio", spec)
    if isinstance(dataset.features.get(audio) if dataset.features else None, datasets.Audio):
        dataset = dataset.cast_column(audio, datasets.Audio(decode=False))
    return dataset, audio, _column(columns, options.text_column, TEXT_COLUMNS, "text", spec)


@dataclass(frozen=True)
class Row:
    """One dataset row as an utterance, with its audio still encoded."""

    utterance: Utterance
    audio: bytes | str
    number: int = 0  # the row's index in its split


def iter_rows(spec: str, role: str, options: DatasetOptions) -> Iterator[Row | ManifestError]:
    """Each row of the source as a :class:`Row`, or the ManifestError saying why it is bad."""
    yield from _rows(spec, role, options, *open_dataset(spec, role, options))


def _rows(spec, role, options, dataset, audio_column: str, text_column: str):
    language_column = next((c for c in LANGUAGE_COLUMNS if c in _columns(dataset)), None)
    label = f"{spec}[{options.split or DEFAULT_SPLITS.get(role, 'train')}]"
    for number, record in enumerate(dataset):
        where = f"{label}:{number}"
        try:
            row = _row(record, audio_column, text_column, language_column, where)
        except ManifestError as exc:
            yield exc
            continue
        yield replace(row, number=number)


def read_dataset(
    spec: str,
    role: str,
    options: DatasetOptions,
    min_audio_len: float = 0.0,
    max_audio_len: float = 30.0,
    skip_bad: bool = False,
    limit: int | None = None,
) -> tuple[list[Utterance], ManifestStats, RowAudio]:
    """Every row of the source validated and filtered like :func:`read_manifest`; the
    :class:`RowAudio` gives each kept utterance's audio (``ManifestDataset(audio=...)``)."""
    stats = ManifestStats()
    kept: list[Utterance] = []
    encoded: dict[str, bytes | str | int] = {}
    dataset, audio_column, text_column = open_dataset(spec, role, options)
    indexed = isinstance(dataset, _import_datasets().Dataset)  # rows re-read by index
    for item in _rows(spec, role, options, dataset, audio_column, text_column):
        if limit is not None and len(kept) >= limit:
            break
        stats.total += 1
        row = _measured(item)
        if isinstance(row, ManifestError):
            if not skip_bad:
                raise row
            stats.problems.append(str(row))
            continue
        utterance = row.utterance
        if not stats.admit(utterance, min_audio_len, max_audio_len):
            continue
        kept.append(utterance)
        bytes_only = indexed and isinstance(row.audio, bytes)
        encoded[utterance.audio_path] = row.number if bytes_only else row.audio
    stats.kept = len(kept)
    if stats.total == 0:
        raise ManifestError(f"{spec}: the dataset holds no rows")
    return kept, stats, RowAudio(encoded, dataset if indexed else None, audio_column)


class RowAudio:
    """The audio of dataset utterances: a file path, or the bytes of a row read again by its
    index from the (memory-mapped) dataset when asked for, so a corpus is not held in memory;
    a streamed source's rows are kept as bytes (evaluation sets)."""

    def __init__(self, encoded: dict[str, bytes | str | int], dataset, audio_column: str):
        self.encoded = encoded
        self.dataset = dataset
        self.audio_column = audio_column

    def __call__(self, utterance: Utterance) -> np.ndarray:
        from whisper_tune.audio import load_audio

        source = self.encoded[utterance.audio_path]
        if isinstance(source, int):
            source = self.dataset[source][self.audio_column]["bytes"]
        return load_audio(source)


def stream_rows(
    spec: str,
    options: DatasetOptions,
    min_audio_len: float,
    max_audio_len: float,
    skip_bad: bool,
    seed: int,
    shuffle_buffer: int,
) -> Iterator[Row]:
    """The rows of a (streamed) training source, shuffled through a buffer of
    ``shuffle_buffer`` rows in ``seed``'s order and filtered by duration; audio still encoded."""
    rows = iter_rows(spec, "train", options)
    for item in buffer_shuffled(rows, shuffle_buffer, np.random.default_rng(seed)):
        row = _measured(item)
        if isinstance(row, ManifestError):
            if not skip_bad:
                raise row
            continue
        if min_audio_len <= row.utterance.duration <= max_audio_len:
            yield row


def _measured(item: Row | ManifestError) -> Row | ManifestError:
    """The row with its duration from the audio header (a ManifestError when unreadable)."""
    if isinstance(item, ManifestError) or item.utterance.duration is not None:
        return item
    from whisper_tune.audio import audio_duration

    try:
        seconds = audio_duration(item.audio)
    except WhisperTuneError as exc:
        return ManifestError(f"{item.utterance.source}: {exc}")
    return replace(item, utterance=replace(item.utterance, duration=seconds))


def _row(
    record: dict,
    audio_column: str,
    text_column: str,
    language_column: str | None,
    where: str,
) -> Row:
    from whisper_tune.languages import language_code

    text = record.get(text_column)
    if text is None:
        text = ""  # an empty transcript: a no-speech sample, as in a manifest
    if not isinstance(text, str):
        raise ManifestError(f"{where}: column '{text_column}' must be a string")
    audio = record.get(audio_column)
    encoded: bytes | str | None = None
    if isinstance(audio, dict):
        encoded = audio.get("bytes") or audio.get("path")
    elif isinstance(audio, str | bytes):
        encoded = audio
    if not encoded:
        raise ManifestError(f"{where}: column '{audio_column}' holds no audio bytes or path")
    if isinstance(encoded, str) and not Path(encoded).is_file():
        raise ManifestError(f"{where}: audio file not found: {encoded}")
    row_language = record.get(language_column) if language_column else None
    try:
        code = language_code(_base_language(row_language)) if row_language else None
    except WhisperTuneError as exc:
        raise ManifestError(f"{where}: {exc}") from None
    path = encoded if isinstance(encoded, str) else where
    utterance = Utterance(audio_path=path, sentence=text.strip(), language=code, source=where)
    return Row(utterance, encoded)


def _base_language(value: object) -> str:
    """Common Voice's locale ``zh-CN`` → ``zh``; FLEURS' ``Mandarin Chinese`` → ``Chinese``."""
    text = str(value).split("-")[0].split("_")[0]
    from whisper_tune.languages import language_code

    try:
        language_code(text)
    except WhisperTuneError:
        words = text.split()
        return words[-1] if len(words) > 1 else text
    return text


def _column(columns: list[str], given: str | None, names, what: str, spec: str) -> str:
    if given:
        if given not in columns:
            raise WhisperTuneError(
                f"{spec}: no column {given!r} for the {what} (has {', '.join(columns)})"
            )
        return given
    found = next((name for name in names if name in columns), None)
    if found is None:
        raise WhisperTuneError(
            f"{spec}: no {what} column among {', '.join(columns)}; name it with --{what}_column"
        )
    return found


def _columns(dataset) -> list[str]:
    """A dataset's column names; a stream whose features are not known yet shows its first row."""
    if dataset.column_names:
        return list(dataset.column_names)
    return list(next(iter(dataset), {}))


def _disk_layout(path: Path) -> str | None:
    """``save_to_disk`` (a Dataset or a DatasetDict folder), ``audiofolder`` or None."""
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return "disk"
    if any((path / name).is_file() for name in METADATA_FILES):
        return "audiofolder"
    if any(path.glob(f"*/{name}") for name in METADATA_FILES):
        return "audiofolder"
    return None


def _data_files(path: Path) -> list[str]:
    return [str(p) for suffix in FILE_SUFFIXES for p in sorted(path.glob(f"**/*{suffix}"))]


def _load(datasets, spec: str, split: str, options: DatasetOptions):
    if spec.startswith(HUB_PREFIX):
        return datasets.load_dataset(
            spec[len(HUB_PREFIX) :].strip("/"),
            options.dataset_config,
            split=split,
            streaming=options.streaming,
        )
    path = Path(spec)
    if not path.exists():
        raise WhisperTuneError(f"{spec}: no such file or folder")
    layout = _disk_layout(path) if path.is_dir() else None
    if layout == "disk":
        return datasets.load_from_disk(str(path))
    if layout == "audiofolder":
        return _audiofolder(datasets, path, split, options.streaming)
    files = [str(path)] if path.is_file() else _data_files(path)
    builder = FILE_SUFFIXES[Path(files[0]).suffix]
    return datasets.load_dataset(
        builder, data_files=files, split="train", streaming=options.streaming
    )


def _audiofolder(datasets, root: Path, split: str, streaming: bool):
    """An ``audiofolder`` read as its metadata table plus a path column of the audio files
    (datasets' own builder encodes audio through torchcodec, which this does not need)."""
    candidates = [root / split / name for name in METADATA_FILES] + [
        root / name for name in METADATA_FILES
    ]
    metadata = next((path for path in candidates if path.is_file()), None)
    if metadata is None:
        raise WhisperTuneError(f"{root}: no metadata.csv or metadata.jsonl for split {split!r}")
    builder = "csv" if metadata.suffix == ".csv" else "json"
    table = datasets.load_dataset(
        builder, data_files=str(metadata), split="train", streaming=streaming
    )
    folder = metadata.parent

    def add_audio(row: dict) -> dict:
        return {"audio": {"bytes": None, "path": str(folder / row["file_name"])}}

    if "file_name" not in _columns(table):
        raise WhisperTuneError(f"{metadata}: no file_name column naming the audio")
    return table.map(add_audio, remove_columns=["file_name"])


def _import_datasets():
    try:
        import datasets
    except ImportError:
        raise WhisperTuneError(
            "reading a Hugging Face dataset needs the datasets package: "
            "pip install 'whisper-tune[hub]' (or pip install datasets)"
        ) from None
    datasets.disable_progress_bars()
    return datasets
