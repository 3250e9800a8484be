"""Shared fixtures. Nothing here reaches a network: hub access is switched off for tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# --- tiny random Whisper models (owned by the import-ct2 work) ---------------------------


def _save_tiny_random_whisper(directory, bundled_name: str, ffn_dim: int = 128):
    """A randomly initialised Whisper (d_model 64, 2+2 layers) with the real tokenizer,
    generation config and processor of a bundled model, saved for ``from_pretrained``."""
    import torch
    from transformers import WhisperForConditionalGeneration

    from whisper_tune import zoo
    from whisper_tune.convert.whisper_assets import (
        WhisperDims,
        build_whisper_parts,
        read_ct2_config,
    )

    files = zoo.bundled_files_dir(bundled_name)
    n_vocab = 51864 if bundled_name.endswith(".en") else 51865
    dims = WhisperDims(
        n_mels=80,
        n_vocab=n_vocab,
        d_model=64,
        encoder_layers=2,
        encoder_heads=4,
        decoder_layers=2,
        decoder_heads=4,
        ffn_dim=ffn_dim,
    )
    config, generation, processor = build_whisper_parts(files, read_ct2_config(files), dims)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = generation
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_whisper_en(tmp_path_factory):
    """Path to a tiny random English-only Whisper dir (tiny.en's tokenizer, vocab 51864)."""
    return _save_tiny_random_whisper(tmp_path_factory.mktemp("tiny_whisper_en"), "tiny.en")


@pytest.fixture(scope="session")
def tiny_whisper_multi(tmp_path_factory):
    """Path to a tiny random multilingual Whisper dir (base's tokenizer, vocab 51865)."""
    return _save_tiny_random_whisper(tmp_path_factory.mktemp("tiny_whisper_multi"), "base")


@pytest.fixture(scope="session")
def tiny_whisper_multi_4x(tmp_path_factory):
    """Like ``tiny_whisper_multi`` with whisper.cpp's fixed FFN size, 4 × d_model (256)."""
    return _save_tiny_random_whisper(tmp_path_factory.mktemp("tiny_multi_4x"), "base", 256)


@pytest.fixture(scope="session")
def tiny_whisper_en_4x(tmp_path_factory):
    """Like ``tiny_whisper_en`` with whisper.cpp's fixed FFN size, 4 × d_model (256)."""
    return _save_tiny_random_whisper(tmp_path_factory.mktemp("tiny_en_4x"), "tiny.en", 256)


# --- synthetic speech (owned by the synthesis work) --------------------------------------

ENGLISH_CLIP_TEXT = "The weather forecast says it will snow tomorrow."
CHINESE_CLIP_TEXT = "今天天气很好我们去公园散步吧"


@pytest.fixture(scope="session")
def finetune_config():
    """``make(manifest, model, out, **overrides)``: a FinetuneConfig for a few quick LoRA steps
    on a tiny random model (4 steps, rank 8, lr 1e-2, no saving mid-run, no loader workers)."""
    from whisper_tune.train.config import FinetuneConfig

    def make(manifest, model, out, **overrides) -> FinetuneConfig:
        values = dict(
            train_data=str(manifest),
            base_model=str(model),
            output_dir=str(out),
            max_steps=4,
            per_device_train_batch_size=4,
            learning_rate=1e-2,
            logging_steps=1,
            save_steps=100,
            num_workers=0,
            lora_r=8,
            lora_alpha=16,
        )
        return FinetuneConfig(**(values | overrides))

    return make


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory):
    """One folder for every synthesised clip of the session."""
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def english_clip(speech_dir):
    """``(wav path, text)``: one short English sentence (hibari's bundled voice), 16 kHz."""
    from whisper_tune.synth import synthesize_to_file

    path = synthesize_to_file(speech_dir / "english.wav", ENGLISH_CLIP_TEXT, "en", seed=0)
    return path, ENGLISH_CLIP_TEXT


@pytest.fixture(scope="session")
def chinese_clip(speech_dir):
    """``(wav path, text)``: one Mandarin sentence (espeak-ng reading pinyin), 16 kHz."""
    from whisper_tune.synth import synthesize_to_file

    path = synthesize_to_file(speech_dir / "chinese.wav", CHINESE_CLIP_TEXT, "zh", seed=0)
    return path, CHINESE_CLIP_TEXT


@pytest.fixture(scope="session")
def silence_clip(speech_dir):
    """Wav path of 3 s of digital silence."""
    from whisper_tune.synth import save_wav, silence

    return save_wav(speech_dir / "silence.wav", silence(3.0))


@pytest.fixture(scope="session")
def long_english_file(speech_dir):
    """``(wav path, texts)``: about 2.5 minutes, the 40 general English sentences in order,
    at slightly varied speeds, 0.8 s apart."""
    from whisper_tune.corpus_text import ENGLISH_GENERAL
    from whisper_tune.synth import concatenate, save_wav, synthesize

    texts = list(ENGLISH_GENERAL)
    speeds = (1.0, 0.9, 1.1, 0.95, 1.05)
    clips = [synthesize(t, "en", speeds[i % 5], seed=i) for i, t in enumerate(texts)]
    return save_wav(speech_dir / "long_english.wav", concatenate(clips, 0.8)), texts


# --- data preparation (owned by the prepare work) ----------------------------------------


@pytest.fixture
def tone():
    """``tone(seconds, freq=440.0)``: a 16 kHz float32 sine wave at amplitude 0.3."""
    import numpy as np

    def make(seconds: float, freq: float = 440.0):
        t = np.arange(int(round(seconds * 16000))) / 16000
        return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)

    return make


# --- HTTP server (owned by the server work) ----------------------------------------------


@pytest.fixture(scope="session")
def tiny_en_transcriber():
    """The bundled tiny.en CTranslate2 model behind the Transcriber interface (2 workers)."""
    from whisper_tune.inference import load_transcriber

    return load_transcriber("tiny.en", num_workers=2)


@pytest.fixture(scope="session")
def serve_app():
    """``serve_app(app) -> base URL``: run ``app`` with uvicorn on a free 127.0.0.1 port in a
    thread (``serve_app(settings=f)``: the ``uvicorn.Config`` that ``f(port)`` returns); every
    server started this way stops at the end of the session."""
    import socket
    import threading
    import time

    import uvicorn

    running = []

    def start(app=None, *, settings=None) -> str:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if settings is None:
            config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        else:
            config = settings(port)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, _ in running:
        server.should_exit = server.force_exit = True  # don't wait for clients left hanging
    for _, thread in running:
        thread.join(timeout=30)
