"""Hugging Face ``datasets`` sources as --train_data / --test_data, prepare from-datasets and
check: built here with the Audio feature and Common Voice columns (no network)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

datasets = pytest.importorskip("datasets")

from whisper_tune.data.hf_datasets import DatasetOptions, is_dataset_source  # noqa: E402
from whisper_tune.errors import WhisperTuneError  # noqa: E402

SENTENCES = ["the cat sat", "a red boat", "", "go home now", "blue sky", "hello there"]


def _clips(folder, seconds=(1.0, 1.2, 0.8, 1.5, 0.2, 1.1)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, length in enumerate(seconds):
        path = folder / f"clip{i}.wav"
        soundfile.write(path, 0.1 * rng.standard_normal(int(16000 * length)), 16000)
        paths.append(str(path))
    return paths


def _common_voice(tmp_path):
    """A Common Voice-shaped dataset: path, audio (Audio feature), sentence, locale, votes."""
    paths = _clips(tmp_path / "clips")
    table = {
        "client_id": ["x"] * len(paths),
        "path": [p.rsplit("/", 1)[-1] for p in paths],
        "audio": paths,
        "sentence": SENTENCES,
        "locale": ["en"] * len(paths),
        "up_votes": [2] * len(paths),
    }
    dataset = datasets.Dataset.from_dict(table).cast_column(
        "audio", datasets.Audio(sampling_rate=16000)
    )
    return dataset


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("hfdata")
    dataset = _common_voice(root)
    datasets.DatasetDict({"train": dataset, "test": dataset}).save_to_disk(root / "cv")
    dataset.to_parquet(str(root / "test.parquet"))
    return root


def test_sources_are_recognised(sources, tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("{}\n")
    assert is_dataset_source(sources / "cv")
    assert is_dataset_source(sources / "test.parquet")
    assert is_dataset_source("hf://datasets/someone/thing")
    assert not is_dataset_source(manifest)


def test_read_dataset_filters_like_a_manifest(sources):
    from whisper_tune.data.dataset import read_utterances

    utterances, stats, audio = read_utterances(
        str(sources / "cv"), "train", DatasetOptions(), 0.5, 30.0, False
    )
    # the 0.2 s clip is too short; the empty sentence is a kept no-speech sample
    assert (stats.total, stats.kept, stats.too_short, stats.no_speech) == (6, 5, 1, 1)
    assert [u.sentence for u in utterances] == [s for s in SENTENCES if s != "blue sky"]
    assert {u.language for u in utterances} == {"en"}
    assert utterances[0].source.endswith("cv[train]:0")
    samples = audio(utterances[0])
    assert samples.dtype == np.float32 and len(samples) == 16000
    # the corpus stays on disk: rows are read again by index, their bytes not kept in memory
    assert all(isinstance(where, int) for where in audio.encoded.values())


@pytest.mark.parametrize("streaming", [False, True])
def test_audiofolder_splits(tmp_path, streaming):
    """An audiofolder (train/metadata.csv + test/metadata.jsonl), read without torchcodec."""
    from whisper_tune.data.dataset import read_utterances

    _clips(tmp_path / "train", (1.0, 1.0))
    _clips(tmp_path / "test", (1.0,))
    (tmp_path / "train" / "metadata.csv").write_text(
        "file_name,transcription,language\nclip0.wav,first one,Chinese\nclip1.wav,second,zh\n"
    )
    (tmp_path / "test" / "metadata.jsonl").write_text(
        json.dumps({"file_name": "clip0.wav", "text": "held out"}) + "\n"
    )
    assert is_dataset_source(tmp_path)
    options = DatasetOptions(streaming=streaming)
    train, _, _ = read_utterances(str(tmp_path), "train", options, 0.0, 30.0, False)
    assert [(u.sentence, u.language) for u in train] == [("first one", "zh"), ("second", "zh")]
    test, _, audio = read_utterances(str(tmp_path), "eval", options, 0.0, 30.0, False)
    assert [u.sentence for u in test] == ["held out"] and len(audio(test[0])) == 16000


def test_bad_rows_name_the_row(tmp_path, capsys):
    from whisper_tune.cli import main
    from whisper_tune.data.dataset import read_utterances
    from whisper_tune.data.prepare.check import check_dataset

    paths = _clips(tmp_path / "clips", (1.0, 1.0))
    table = {"audio": [paths[0], str(tmp_path / "gone.wav")], "sentence": ["a", "b"]}
    table["locale"] = ["en", "klingon"]
    datasets.Dataset.from_dict(table).to_parquet(str(tmp_path / "bad.parquet"))
    spec = str(tmp_path / "bad.parquet")
    with pytest.raises(WhisperTuneError, match=r"bad.parquet\[train\]:1: .*gone.wav"):
        read_utterances(spec, "train", DatasetOptions(), 0.0, 30.0, False)
    report = check_dataset(spec, DatasetOptions())
    assert report.valid == 1 and len(report.problems) == 1
    with pytest.raises(SystemExit) as exit_code:
        main(["prepare", "check", spec, "--decode", "false"])
    assert exit_code.value.code == 1
    assert "gone.wav" in capsys.readouterr().out
    with pytest.raises(WhisperTuneError, match="no column 'words' for the text"):
        read_utterances(spec, "train", DatasetOptions(text_column="words"), 0.0, 30.0, True)


def test_data_is_required(capsys):
    """--train_data may be left out for --dataset_name, so its absence is a run-time error."""
    from whisper_tune.cli import main
    from whisper_tune.train.config import FinetuneConfig

    for argv in (["finetune"], ["evaluate"]):
        with pytest.raises(SystemExit) as exit_code:
            main(argv)
        assert exit_code.value.code == 2
        assert f"{argv[0]} needs --" in capsys.readouterr().err
    named = FinetuneConfig(dataset_name="someone/speech")
    assert named.train_data == "hf://datasets/someone/speech"


def test_hub_source_goes_to_datasets(monkeypatch):
    """The Hub path is real datasets code; offline it fails with a one-line error."""
    from whisper_tune.data.hf_datasets import open_dataset

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(WhisperTuneError, match="hf://datasets/nobody/nothing: cannot load"):
        open_dataset("hf://datasets/nobody/nothing", "train", DatasetOptions())


def test_prepare_from_datasets_round_trips(sources, tmp_path):
    from whisper_tune.cli import main
    from whisper_tune.data.manifest import read_manifest

    output = tmp_path / "train.jsonl"
    with pytest.raises(SystemExit) as exit_code:
        main(["prepare", "from-datasets", str(sources / "cv"), "--output", str(output)])
    assert exit_code.value.code == 0
    utterances, _ = read_manifest(output, 0.0)
    assert [u.sentence for u in utterances] == SENTENCES
    assert (tmp_path / "train_audio" / "00000000.wav").is_file()  # bytes written as wav
    first = json.loads(output.read_text().splitlines()[0])
    assert first["language"] == "en" and first["duration"] == 1.0


def test_finetune_and_evaluate_from_datasets(sources, tmp_path, tiny_whisper_en, finetune_config):
    from whisper_tune.eval_config import EvalConfig
    from whisper_tune.evaluate import evaluate
    from whisper_tune.train.trainer import finetune

    config = finetune_config(
        sources / "cv", tiny_whisper_en, tmp_path / "out", max_steps=2,
        test_data=str(sources / "test.parquet"), eval_steps=2, save_steps=2,
        per_device_train_batch_size=2, freeze_encoder=True, metric_for_best_model="loss",
    )  # fmt: skip
    result = finetune(config)  # eval loss only: a random model generates 448 tokens a clip
    assert result.steps == 2 and result.last_loss is not None
    assert result.best_step == 2 and result.best_eval_loss is not None

    report = evaluate(
        EvalConfig(
            test_data=str(sources / "test.parquet"), model_path=("tiny.en",), num_workers=0,
            output_dir=str(tmp_path / "eval"),
        ),
        progress=False,
    )  # fmt: skip
    assert report.utterances == 5 and report.test_data.endswith("test.parquet")


def test_finetune_streams_a_dataset(sources, tmp_path, tiny_whisper_en, finetune_config):
    from whisper_tune.train.trainer import finetune

    streamed = finetune_config(
        sources / "test.parquet", tiny_whisper_en, tmp_path / "stream", max_steps=2,
        per_device_train_batch_size=2, streaming=True, shuffle_buffer=3,
    )  # fmt: skip
    assert finetune(streamed).steps == 2
