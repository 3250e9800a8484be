"""Bundled models: assembled and imported once into the cache, usable offline."""

from __future__ import annotations

import json

import pytest

from whisper_tune import zoo
from whisper_tune.convert.ct2_format import read_header
from whisper_tune.errors import ModelError
from whisper_tune.models import is_hf_dir, resolve_ct2_model
from whisper_tune.resolve import bundled_hf_dir, resolve_hf_model
from whisper_tune.synth import synthesize


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WHISPER_TUNE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _installed_parts(name: str) -> dict[str, tuple[int, int]]:
    model = zoo.BUNDLED_MODELS[name]
    parts = [zoo._package_dir(model, package) / path for package, path in model.parts]
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in parts}


def test_bundled_models_are_installed():
    assert {"tiny.en", "base"} <= set(zoo.BUNDLED_MODELS)
    for name in zoo.BUNDLED_MODELS:
        files = zoo.bundled_files_dir(name)
        assert (files / "tokenizer.json").is_file() and (files / "config.json").is_file()
    with pytest.raises(ModelError, match="no bundled model 'huge'"):
        zoo.bundled_ct2_dir("huge")


def test_base_is_assembled_once_and_runs_offline(cache):
    from faster_whisper import WhisperModel

    installed = _installed_parts("base")
    directory = zoo.bundled_ct2_dir("base")
    assert directory == cache / "ct2" / "base"
    model_bin = directory / "model.bin"
    assert model_bin.stat().st_size == zoo.BUNDLED_MODELS["base"].size
    assert read_header(model_bin) == (6, "WhisperSpec", 3)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt", "preprocessor_config.json"):
        assert (directory / name).is_file(), name
    assert json.loads((directory / "preprocessor_config.json").read_text())["feature_size"] == 80
    assert not [p for p in (cache / "ct2").iterdir() if p.name.startswith(".")]

    stamp = model_bin.stat().st_mtime_ns
    assert resolve_ct2_model("base") == str(directory)
    assert model_bin.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert _installed_parts("base") == installed  # the packages were only read

    model = WhisperModel(str(directory), device="cpu", compute_type="int8")
    audio = synthesize("Good morning, how are you today?", "en", seed=1)
    segments, info = model.transcribe(audio, beam_size=1)
    text = " ".join(segment.text for segment in segments)
    assert info.language == "en" and "morning" in text.lower(), text


def test_concurrent_assembly_publishes_one_copy(cache):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(zoo.bundled_ct2_dir, ["base", "base"]))
    assert paths[0] == paths[1] == cache / "ct2" / "base"
    assert [p.name for p in (cache / "ct2").iterdir()] == ["base"]
    assert (paths[0] / "model.bin").stat().st_size == zoo.BUNDLED_MODELS["base"].size


def test_damaged_cached_copy_is_rebuilt(cache):
    directory = zoo.bundled_ct2_dir("base")
    with open(directory / "model.bin", "r+b") as handle:
        handle.truncate(1000)
    assert zoo.bundled_ct2_dir("base") == directory
    assert (directory / "model.bin").stat().st_size == zoo.BUNDLED_MODELS["base"].size


def test_tiny_en_runs_from_the_package_offline():
    from faster_whisper import WhisperModel

    directory = zoo.bundled_ct2_dir("tiny.en")
    assert directory == zoo.bundled_files_dir("tiny.en")  # no copy of a single-file model
    model = WhisperModel(str(directory), device="cpu", compute_type="int8")
    audio = synthesize("The weather is lovely this afternoon.", "en", seed=2)
    segments, _ = model.transcribe(audio, beam_size=1)
    assert "weather" in " ".join(segment.text for segment in segments).lower()


@pytest.mark.slow
def test_tiny_en_hf_import_is_cached(cache):
    directory = bundled_hf_dir("tiny.en")
    assert is_hf_dir(directory)
    report = json.loads((directory / "import_report.json").read_text())
    assert report["parity"]["same_text"] is True
    stamp = (directory / "model.safetensors").stat().st_mtime_ns
    assert resolve_hf_model("tiny.en") == str(directory)
    assert (directory / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in directory.parent.iterdir()] == ["tiny.en"]  # no scratch left


def test_resolve_ct2_model_explains_bad_references(tiny_whisper_en, tmp_path):
    with pytest.raises(ModelError, match="whisper-tune convert --model_path"):
        resolve_ct2_model(str(tiny_whisper_en))
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "model.bin").write_bytes(b"")
    with pytest.raises(ModelError, match="missing config.json, tokenizer.json, vocabulary.txt"):
        resolve_ct2_model(str(partial))
    with pytest.raises(ModelError, match="not found"):
        resolve_ct2_model("./no-such-model")
    with pytest.raises(ModelError, match="could not be fetched"):
        resolve_ct2_model("Systran/faster-whisper-small", local_files_only=True)
