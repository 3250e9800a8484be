"""Tar shards: JSONL → shards → JSONL round trip, streaming order, partitioning, memory."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from whisper_tune.audio import load_audio, write_wav
from whisper_tune.cli import main
from whisper_tune.data.manifest import read_manifest
from whisper_tune.data.prepare.sharding import write_shards
from whisper_tune.data.shards import is_sharded_corpus, iter_shard_samples, read_shard_index
from whisper_tune.errors import WhisperTuneError


def make_manifest(root, tone, whole=5, recordings=1, slices=4, slice_seconds=1.0):
    """Whole files of distinct tones plus consecutive slices of long recordings."""
    lines = []
    for index in range(whole):
        write_wav(root / f"clip{index}.wav", tone(0.5 + 0.25 * index, 200 + 50 * index))
        lines.append(
            {"audio": {"path": f"clip{index}.wav"}, "sentence": f"clip {index}", "language": "en"}
        )
    if whole >= 2:
        lines[0]["sentence"] = ""  # a no-speech sample survives the trip
        lines[1]["sentences"] = [{"start": 0.0, "end": 0.75, "text": "clip 1"}]
    for rec in range(recordings):
        write_wav(root / f"long{rec}.wav", tone(slices * slice_seconds + 0.5, 700 + rec))
        for index in range(slices):
            start = round(index * slice_seconds, 3)
            lines.append(
                {
                    "audio": {
                        "path": f"long{rec}.wav",
                        "start_time": start,
                        "end_time": round(start + slice_seconds, 3),
                    },
                    "sentence": f"长{rec}段{index}",
                    "language": "zh",
                }
            )
    path = root / "train.jsonl"
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), "utf-8")
    return path


@pytest.fixture
def corpus(tmp_path, tone):
    manifest = make_manifest(tmp_path, tone)
    write_shards(manifest, tmp_path / "shards", samples_per_shard=3)
    return manifest, tmp_path / "shards"


def test_round_trip(corpus, tmp_path, capsys):
    manifest, shards = corpus
    index = read_shard_index(shards)
    assert [s.samples for s in index.shards] == [3, 3, 3]
    assert index.samples == 9 and index.audio_format == "flac"
    assert index.seconds == pytest.approx(sum(0.5 + 0.25 * i for i in range(5)) + 4.0)
    assert is_sharded_corpus(shards) and is_sharded_corpus(shards / "index.json")
    assert is_sharded_corpus(index.shards[0].path)
    assert not is_sharded_corpus(manifest) and not is_sharded_corpus(tmp_path)

    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "unshard", str(shards), "--output_dir", str(tmp_path / "back")])
    assert exit_info.value.code == 0
    original, _ = read_manifest(manifest)
    restored, _ = read_manifest(tmp_path / "back" / "manifest.jsonl")
    assert len(restored) == len(original)
    by_text = {u.sentence: u for u in original}
    for utterance in restored:
        source = by_text[utterance.sentence]
        assert utterance.language == source.language and utterance.sentences == source.sentences
        assert utterance.start_time is None  # the audio is the cut slice itself
        expected = load_audio(source.audio_path, source.start_time, source.end_time)
        np.testing.assert_allclose(load_audio(utterance.audio_path), expected, atol=1 / 32767)
    origin = json.loads((tmp_path / "back" / "manifest.jsonl").read_text("utf-8").splitlines()[0])
    assert set(origin["audio"]) == {"path"}


def test_streaming_order_partitions_and_epochs(corpus):
    _, shards = corpus
    everything = sorted(u.sentence for u, _ in iter_shard_samples(shards, shuffle_buffer=4))
    assert len(everything) == 9

    def order(**kwargs):
        return [u.sentence for u, _ in iter_shard_samples(shards, shuffle_buffer=4, **kwargs)]

    assert order(seed=1) == order(seed=1)
    assert order(seed=1) != order(seed=2) or order(seed=1, epoch=1) != order(seed=1)
    for world_size in (2, 5):  # fewer shards than readers: samples are split instead
        parts = [order(rank=r, world_size=world_size, epoch=3) for r in range(world_size)]
        assert sorted(sum(parts, [])) == everything
    exact = order(rank=1, world_size=2, num_samples=7)
    assert len(exact) == 7  # the rank's part holds fewer: it goes on into the next epoch
    assert order(num_samples=0) == []
    kept = [u.duration for u, _ in iter_shard_samples(shards, min_audio_len=0.9, max_audio_len=1.2)]
    assert sorted(kept) == [1.0] * 5
    for utterance, audio in iter_shard_samples(shards):
        assert audio.dtype == np.float32 and len(audio) == round(utterance.duration * 16000)
    with pytest.raises(WhisperTuneError, match="rank 2 is outside world_size 2"):
        next(iter_shard_samples(shards, rank=2, world_size=2))


def test_dataloader_workers_each_read_their_own_part(corpus):
    import torch

    _, shards = corpus

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):  # each worker is one reader
            worker = torch.utils.data.get_worker_info()
            samples = iter_shard_samples(
                shards, shuffle_buffer=2, seed=5, rank=worker.id, world_size=worker.num_workers
            )
            for utterance, audio in samples:
                yield utterance.sentence, len(audio)

    loader = torch.utils.data.DataLoader(Stream(), batch_size=None, num_workers=2)
    seen = [text for text, _ in loader]
    assert sorted(seen) == sorted(u.sentence for u, _ in iter_shard_samples(shards))


class SampleSource:
    """A ShardStream's ``make_sample``: which shard and index each sample came from."""

    seed = 3

    def __call__(self, utterance, audio, index):
        return {"shard": utterance.audio_path.split("#")[0], "index": index}


def test_each_rank_streams_its_own_shards(tmp_path, tone):
    """Two ranks with two DataLoader workers each: four readers of four shards; the ranks
    read disjoint shards (a multi-node run reads each shard on one node only)."""
    import torch

    from whisper_tune.data.dataset import ShardStream

    manifest = make_manifest(tmp_path, tone, whole=4, recordings=1, slices=4)
    write_shards(manifest, tmp_path / "shards", samples_per_shard=2)
    per_rank = []
    for rank in (0, 1):
        stream = ShardStream(tmp_path / "shards", SampleSource(), 4, 0.0, 30.0, 2, rank, 2)
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
        per_rank.append(list(loader))
    shards = [{sample["shard"] for sample in samples} for samples in per_rank]
    assert [len(samples) for samples in per_rank] == [4, 4]
    assert len(shards[0]) == len(shards[1]) == 2 and not shards[0] & shards[1]
    indices = [sample["index"] for samples in per_rank for sample in samples]
    assert len(set(indices)) == 8  # each sample its own augmentation/prompt seed


def test_streaming_memory_stays_flat(tmp_path, tone):
    manifest = make_manifest(tmp_path, tone, whole=0, recordings=8, slices=60, slice_seconds=0.5)
    write_shards(manifest, tmp_path / "shards", samples_per_shard=40)
    decoded_total = 8 * 60 * 0.5 * 16000 * 4  # bytes of float32 audio in the corpus: 15 MB
    tracemalloc.start()
    try:
        samples = iter_shard_samples(tmp_path / "shards", shuffle_buffer=16)
        for count, _ in enumerate(samples, 1):
            if count == 60:
                early, _ = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
        late, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 480
    assert late - early < 256 * 1024, (early, late)
    assert peak < decoded_total / 10, peak


def test_resume_skips_finished_shards(corpus, tone):
    manifest, shards = corpus
    before = (shards / "index.json").read_text()
    stamps = {p.name: p.stat().st_mtime_ns for p in shards.glob("shard-*.tar")}
    (shards / "shard-000001.tar").unlink()
    report = write_shards(manifest, shards, samples_per_shard=3)
    assert "2 already written" in report.summary()
    assert (shards / "index.json").read_text() == before
    for name, stamp in stamps.items():
        if name != "shard-000001.tar":
            assert (shards / name).stat().st_mtime_ns == stamp
    with pytest.raises(WhisperTuneError, match="other settings \\(samples_per_shard\\)"):
        write_shards(manifest, shards, samples_per_shard=4)
    rewritten = write_shards(manifest, shards, samples_per_shard=4, overwrite=True)
    assert rewritten.outputs[str(shards / "index.json")] == 9
    assert [s.samples for s in read_shard_index(shards).shards] == [4, 4, 1]


def test_bad_lines_stop_or_are_skipped(tmp_path, tone):
    manifest = make_manifest(tmp_path, tone, whole=3, recordings=0)
    (tmp_path / "clip2.wav").write_bytes(b"not audio at all" * 50)
    with manifest.open("a", encoding="utf-8") as handle:
        handle.write("{broken\n")
    with pytest.raises(WhisperTuneError, match=r"train.jsonl:4: not valid JSON"):
        write_shards(manifest, tmp_path / "a")
    report = write_shards(manifest, tmp_path / "b", skip_bad=True, audio_format="opus")
    assert report.outputs[str(tmp_path / "b" / "index.json")] == 2
    summary = report.summary()
    assert "train.jsonl:4: not valid JSON" in summary
    assert "train.jsonl:3: " in summary and "clip2.wav: cannot decode audio" in summary
    for utterance, audio in iter_shard_samples(tmp_path / "b"):  # opus survives the trip
        assert abs(len(audio) / 16000 - utterance.duration) < 0.03
