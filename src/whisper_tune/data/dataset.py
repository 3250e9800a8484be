"""Training and evaluation datasets: audio → log-mel features, utterance → decoder targets.

Audio that fails to decode inside a DataLoader worker does not crash the worker: the sample
comes back marked bad with the manifest line, and the collator either raises one clear
ManifestError in the main process or, with ``skip_bad``, drops it and counts it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from whisper_tune.audio import SAMPLE_RATE, load_audio
from whisper_tune.audio_context import frames_of
from whisper_tune.data.manifest import ManifestStats, Utterance, read_manifest
from whisper_tune.data.targets import IGNORE, TargetBuilder
from whisper_tune.errors import ManifestError, WhisperTuneError

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]
Prompts = Callable[[Utterance, np.random.Generator], "str | None"]


@dataclass
class SampleMaker:
    """Everything needed to turn (utterance, audio) into a model input dict."""

    feature_extractor: object
    targets: TargetBuilder
    timestamps: bool = False
    timestamp_ratio: float = 0.5
    augment: Augment | None = None
    seed: int = 0
    prompts: Prompts | None = None  # a data.prompts.PromptPicker for --prompt_ratio

    def __call__(self, utterance: Utterance, audio: np.ndarray, index: int) -> dict:
        rng = np.random.default_rng((self.seed, index))
        if self.augment is not None:
            audio = self.augment(audio, rng)
        seconds = len(audio) / SAMPLE_RATE
        use_timestamps = self.timestamps and rng.random() < self.timestamp_ratio
        previous_text = self.prompts(utterance, rng) if self.prompts is not None else None
        target = self.targets.build(utterance, use_timestamps, seconds, previous_text)
        features = self.feature_extractor(
            audio, sampling_rate=SAMPLE_RATE, return_tensors="np"
        ).input_features[0]
        return {
            "input_features": features,
            "decoder_input_ids": target.decoder_input_ids,
            "labels": target.labels,
            "seconds": seconds,
        }


def bad_sample(utterance: Utterance, error: Exception) -> dict:
    return {"bad": f"{utterance.source}: {error}"}


class ManifestDataset(torch.utils.data.Dataset):
    """Map-style dataset over validated manifest utterances.

    ``make_sample(utterance, audio, index)`` builds the sample dict (a SampleMaker for
    training; evaluation passes one that only extracts features). ``audio(utterance)`` reads
    an utterance's audio (default: its file and slice; a datasets source passes its rows').
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        make_sample: Callable[[Utterance, np.ndarray, int], dict],
        audio: Callable[[Utterance], np.ndarray] | None = None,
    ) -> None:
        self.utterances = list(utterances)
        self.make_sample = make_sample
        self.audio = audio or file_audio

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> dict:
        utterance = self.utterances[index]
        try:
            audio = self.audio(utterance)
        except WhisperTuneError as exc:
            return bad_sample(utterance, exc)
        return self.make_sample(utterance, audio, index)


def file_audio(utterance: Utterance) -> np.ndarray:
    """A manifest utterance's audio: its file, sliced to its start and end."""
    return load_audio(utterance.audio_path, utterance.start_time, utterance.end_time)


class ReplayMix(torch.utils.data.Dataset):
    """The training set plus general speech (``--replay_data``) making ``ratio`` of the samples.

    Every domain sample stays (an epoch still sees each once); replay samples are added until
    they are ``ratio`` of the whole, taken from the replay set in a seeded random order (cycled
    when more are needed than it holds). The Trainer's sampler shuffles the mix.
    """

    def __init__(
        self, domain: ManifestDataset, replay: ManifestDataset, ratio: float, seed: int
    ) -> None:
        self.domain = domain
        self.replay = replay
        extra = round(len(domain) * ratio / (1 - ratio))
        order = np.random.default_rng(seed).permutation(len(replay))
        self.replay_indices = [int(order[i % len(replay)]) for i in range(extra)]
        self.utterances = domain.utterances + [replay.utterances[i] for i in self.replay_indices]

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> dict:
        if index < len(self.domain):
            return self.domain[index]
        return self.replay[self.replay_indices[index - len(self.domain)]]


class ShardStream(torch.utils.data.IterableDataset):
    """Streams a sharded corpus through a shuffle buffer; memory stays bounded.

    Each process (``rank`` of ``world_size``) and each of its DataLoader workers is one
    reader of its own shards, so the nodes of a multi-node run read disjoint shards, each
    from its own storage. ``num_samples`` is what this process yields (every process the same
    number, so all take the same steps).
    """

    def __init__(
        self,
        shards: str | Path,
        make_sample: SampleMaker,
        num_samples: int,
        min_audio_len: float,
        max_audio_len: float,
        shuffle_buffer: int = 1000,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.shards = shards
        self.make_sample = make_sample
        self.num_samples = num_samples
        self.min_audio_len = min_audio_len
        self.max_audio_len = max_audio_len
        self.shuffle_buffer = shuffle_buffer
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[dict]:
        from whisper_tune.data.shards import iter_shard_samples

        worker = torch.utils.data.get_worker_info()
        workers = worker.num_workers if worker else 1
        reader = self.rank * workers + (worker.id if worker else 0)
        readers = self.world_size * workers
        stream = iter_shard_samples(
            self.shards,
            shuffle_buffer=self.shuffle_buffer,
            seed=self.make_sample.seed,
            rank=reader,
            world_size=readers,
            num_samples=-(-self.num_samples // workers),
            min_audio_len=self.min_audio_len,
            max_audio_len=self.max_audio_len,
        )
        for index, (utterance, audio) in enumerate(stream):
            yield self.make_sample(utterance, audio, index * readers + reader)


class DatasetStream(torch.utils.data.IterableDataset):
    """Streams a datasets source (``--streaming``): rows are read as they arrive, shuffled
    through a buffer, and read again in a new order each epoch until ``num_samples`` are out;
    DataLoader worker k of n keeps every n-th row."""

    def __init__(
        self,
        spec: str,
        options,
        make_sample: SampleMaker,
        num_samples: int,
        filters: tuple[float, float, bool],
        shuffle_buffer: int = 1000,
    ) -> None:
        self.spec = spec
        self.options = options
        self.make_sample = make_sample
        self.num_samples = num_samples
        self.filters = filters  # min_audio_len, max_audio_len, skip_bad
        self.shuffle_buffer = shuffle_buffer

    def __iter__(self) -> Iterator[dict]:
        from whisper_tune.data.hf_datasets import stream_rows

        worker = torch.utils.data.get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker else (1, 0)
        share = -(-self.num_samples // workers)
        produced, epoch = 0, 0
        while produced < share:
            seed = self.make_sample.seed + epoch
            rows = stream_rows(self.spec, self.options, *self.filters, seed, self.shuffle_buffer)
            seen = 0
            for number, row in enumerate(rows):
                if number % workers != worker_id:
                    continue
                seen += 1
                try:
                    audio = load_audio(row.audio)
                except WhisperTuneError as exc:
                    yield bad_sample(row.utterance, exc)
                    continue
                yield self.make_sample(row.utterance, audio, produced * workers + worker_id)
                produced += 1
                if produced >= share:
                    return
            if not seen:
                raise ManifestError(f"{self.spec}: the stream holds no usable rows")
            epoch += 1


FRAMES_KEY = "audio_frames"  # a batch's per-clip count of log-mel frames holding audio


@dataclass
class Collator:
    """Pads a batch; turns bad samples into one clear error (or drops and counts them).
    ``with_frames``: the batch also says how many log-mel frames of each clip hold audio
    (``audio_frames``, for audio-context training)."""

    pad_token_id: int
    skip_bad: bool = False
    with_frames: bool = False
    skipped: list[str] = field(default_factory=list)

    def __call__(self, samples: list[dict]) -> dict:
        good = []
        for sample in samples:
            if "bad" in sample:
                if not self.skip_bad:
                    raise ManifestError(sample["bad"] + " (use --skip_bad to skip such files)")
                self.skipped.append(sample["bad"])
            else:
                good.append(sample)
        if not good:
            raise ManifestError(
                "a whole batch of audio files could not be read: " + "; ".join(self.skipped[-3:])
            )
        width = max(len(s["labels"]) for s in good)
        inputs = torch.full((len(good), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(good), width), IGNORE, dtype=torch.long)
        for row, sample in enumerate(good):
            n = len(sample["labels"])
            inputs[row, :n] = torch.tensor(sample["decoder_input_ids"])
            labels[row, :n] = torch.tensor(sample["labels"])
        features = torch.stack([torch.as_tensor(s["input_features"]) for s in good])
        batch = {"input_features": features.float(), "decoder_input_ids": inputs, "labels": labels}
        if self.with_frames:
            batch[FRAMES_KEY] = torch.tensor(
                [frames_of(round(s["seconds"] * SAMPLE_RATE)) for s in good]
            )
        return batch


def check_audio_files(utterances: Sequence[Utterance], skip_bad: bool) -> list[Utterance]:
    """Fail fast (or skip) on audio files that do not exist, naming the manifest line."""
    present, missing = [], []
    for utterance in utterances:
        (present if Path(utterance.audio_path).is_file() else missing).append(utterance)
    if missing and not skip_bad:
        first = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ManifestError(f"{first.source}: audio file not found: {first.audio_path}{more}")
    return present


def read_utterances(
    spec: str,
    role: str,
    options,
    min_audio_len: float,
    max_audio_len: float,
    skip_bad: bool,
    limit: int | None = None,
) -> tuple[list[Utterance], ManifestStats, Callable[[Utterance], np.ndarray] | None]:
    """The utterances of a data option (a JSONL manifest or a datasets source, see
    :mod:`whisper_tune.data.hf_datasets`; ``options`` its DatasetOptions), filtered and with
    audio present, their stats, and how to read their audio (None: from their files)."""
    from whisper_tune.data.hf_datasets import is_dataset_source, read_dataset

    if is_dataset_source(spec):
        utterances, stats, audio = read_dataset(
            spec, role, options, min_audio_len, max_audio_len, skip_bad, limit
        )
        return utterances, stats, audio
    utterances, stats = read_manifest(spec, min_audio_len, max_audio_len, skip_bad)
    return check_audio_files(utterances, skip_bad)[:limit], stats, None
