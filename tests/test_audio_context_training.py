"""finetune --dynamic_audio_ctx (issue 24) on a tiny random Whisper: the distillation from the
full-window base model to the truncated-context pass goes down, the checkpoint is marked, and
merge, convert and export-ggml carry the marker to engines that then encode short contexts."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from whisper_tune.audio import write_wav
from whisper_tune.audio_context import ContextRule, marker_path, read_marker
from whisper_tune.errors import WhisperTuneError
from whisper_tune.inference import TranscribeOptions, load_transcriber
from whisper_tune.synth import synthesize
from whisper_tune.train import distill
from whisper_tune.train.trainer import finetune

TEXTS = ["the blue kettle is hot", "open the north window please and close the door", "seven"]


# what the distillation runs add to conftest's finetune_config: adapters in every layer, and a
# KL weight a random model's cross-entropy cannot drown
CONTEXT_TRAINING = dict(
    warmup_steps=0,
    per_device_train_batch_size=3,
    freeze_encoder_layers=0,
    dynamic_audio_ctx=True,
    audio_ctx_weight=1000.0,
)


def _train(folder, model, finetune_config, **extra) -> tuple:
    """(result, logged ctx_kl per step, "base" for each step that ran the base model as the
    teacher) of a 4-step --dynamic_audio_ctx run on three clips (0.7-2.6 s)."""
    lines = []
    for i, text in enumerate(TEXTS):
        write_wav(folder / f"c{i}.wav", synthesize(text, "en", seed=i))
        lines.append({"audio": {"path": f"c{i}.wav"}, "sentence": text})
    (folder / "train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    kls: list[float] = []
    teachers: list[str] = []
    log, reference = distill.DistillingTrainer.log, distill.reference_logits

    def log_spy(self, logs, start_time=None):
        log(self, logs, start_time)
        if "ctx_kl" in logs:
            kls.append(logs["ctx_kl"])

    def reference_spy(model, inputs):
        teachers.append("base")
        return reference(model, inputs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(distill.DistillingTrainer, "log", log_spy)
        patch.setattr(distill, "reference_logits", reference_spy)
        config = finetune_config(
            folder / "train.jsonl", model, folder / "out", **CONTEXT_TRAINING | extra
        )
        return finetune(config), kls, teachers


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_whisper_en_4x, finetune_config):
    return _train(tmp_path_factory.mktemp("ctx_train"), tiny_whisper_en_4x, finetune_config)


def test_training_reduces_the_context_distillation_and_marks_the_checkpoint(trained):
    result, kls, teachers = trained
    assert teachers == []  # the default teacher: the model's own full window, not the base
    record = json.loads((result.final_checkpoint / "run_config.json").read_text())
    assert record["dynamic_audio_ctx"] is True
    assert len(kls) == 4 and all(k > 0 for k in kls)
    assert np.mean(kls[-2:]) < 0.6 * kls[0], kls
    for checkpoint in (result.final_checkpoint, result.best_checkpoint):
        assert read_marker(checkpoint) == ContextRule()


def test_the_base_model_as_teacher(tmp_path, tiny_whisper_en_4x, finetune_config):
    _, kls, teachers = _train(
        tmp_path, tiny_whisper_en_4x, finetune_config, audio_ctx_teacher="base"
    )
    assert teachers == ["base"] * 4
    assert np.mean(kls[-2:]) < 0.6 * kls[0], kls


def test_kl_weight_with_dynamic_audio_ctx_is_refused(tmp_path, tiny_whisper_en, finetune_config):
    config = finetune_config(
        tmp_path / "train.jsonl", tiny_whisper_en, tmp_path, **CONTEXT_TRAINING, kl_weight=0.1
    )
    with pytest.raises(WhisperTuneError, match="--kl_weight and --dynamic_audio_ctx"):
        finetune(config)


def test_merge_convert_and_export_ggml_keep_the_marker(trained, tmp_path):
    from whisper_tune.convert.ct2_export import convert_to_ct2
    from whisper_tune.merge import merge_lora

    result, _, _ = trained
    merged = merge_lora(result.final_checkpoint, tmp_path / "models")
    assert read_marker(merged) == ContextRule()
    ct2_dir = tmp_path / "ct2"
    report = convert_to_ct2(str(merged), ct2_dir, quantization="int8", check=False)
    assert report["dynamic_audio_ctx"] and read_marker(ct2_dir) == ContextRule()

    clip = synthesize(TEXTS[0], "en", seed=0)  # 1.4 s
    options = TranscribeOptions(language="en", beam_size=1, temperature=0.0)
    transcriber = load_transcriber(str(ct2_dir))
    positions = []
    encode = transcriber.model.encode
    transcriber.model.encode = lambda f: positions.append(encode(f).shape[1]) or encode(f)
    list(transcriber.transcribe(clip, options)[0])
    assert set(positions) == {ContextRule().positions(len(clip) // 160 + 1)} == {100}

    if importlib.util.find_spec("pywhispercpp") is None:
        pytest.skip("pywhispercpp (the ggml extra) is not installed")
    from whisper_tune.convert.ggml import export_ggml

    ggml = tmp_path / "ggml-ctx.bin"
    report = export_ggml(merged, ggml, local_files_only=True)
    assert report["dynamic_audio_ctx"] and marker_path(ggml).is_file()
    cpp = load_transcriber(str(ggml))
    calls = []
    run = cpp.model.transcribe

    def spy(audio, **params):
        calls.append(params["audio_ctx"])
        return run(audio, **params)

    cpp.model.transcribe = spy
    segments, _ = cpp.transcribe(clip, options)
    assert isinstance([s.text for s in segments], list)  # whisper.cpp ran the short context
    assert calls == [100]
