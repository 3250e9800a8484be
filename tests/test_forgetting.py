"""Fine-tuning without forgetting: warm-up share, previous-text prompts, replay, KL to the base."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import WhisperProcessor

from whisper_tune.audio import write_wav
from whisper_tune.cli import main
from whisper_tune.data.dataset import ManifestDataset, ReplayMix, SampleMaker
from whisper_tune.data.manifest import Utterance, read_manifest
from whisper_tune.data.prompts import PromptPicker
from whisper_tune.data.targets import IGNORE, TargetBuilder
from whisper_tune.errors import WhisperTuneError
from whisper_tune.models import load_whisper
from whisper_tune.synth import silence, synthesize
from whisper_tune.train import distill
from whisper_tune.train.config import FinetuneConfig
from whisper_tune.train.encoder_cache import run_from_cached_states
from whisper_tune.train.trainer import finetune

DOMAIN = ["the blue kettle is hot", "open the north window", "seven green apples"]
GENERAL = ["good morning to you all", "the train leaves at noon"]


def _write_manifest(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> tuple[Path, Path]:
    """(domain, general): three synthetic English clips plus a silent one; two general clips."""
    folder = tmp_path_factory.mktemp("forgetting")
    domain, general = [], []
    for name, texts, lines in (("d", DOMAIN, domain), ("g", GENERAL, general)):
        for i, text in enumerate(texts):
            write_wav(folder / f"{name}{i}.wav", synthesize(text, "en", seed=i))
            lines.append({"audio": {"path": f"{name}{i}.wav"}, "sentence": text})
    write_wav(folder / "quiet.wav", silence(1.5))
    domain.append({"audio": {"path": "quiet.wav"}, "sentence": ""})
    return (
        _write_manifest(folder / "domain.jsonl", domain),
        _write_manifest(folder / "general.jsonl", general),
    )


# --- warm-up ----------------------------------------------------------------------------


def test_warmup_is_a_share_of_the_run_unless_steps_are_given():
    config = FinetuneConfig(train_data="x.jsonl")
    assert config.warmup_steps is None and config.warmup_ratio == 0.1
    assert config.warmup_for(24) == 3  # a 100-clip set, 3 epochs of batch 8: 3 of 24 steps
    assert config.warmup_for(1000) == 100
    assert config.warmup_for(1) == 0  # never the whole run
    explicit = FinetuneConfig(train_data="x.jsonl", warmup_steps=50)
    assert explicit.warmup_for(1000) == 50 and explicit.warmup_for(24) == 23
    assert FinetuneConfig(train_data="x.jsonl", warmup_steps=0).warmup_for(24) == 0


def _log_history(result) -> list[dict]:
    """The Trainer's log of a finished run (saved with its last step's checkpoint)."""
    state = result.run_dir / f"checkpoint-{result.steps}" / "trainer_state.json"
    return json.loads(state.read_text())["log_history"]


def _learning_rates(result) -> list[float]:
    return [entry["learning_rate"] for entry in _log_history(result) if "learning_rate" in entry]


# --- prompts ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def builder(tiny_whisper_en) -> TargetBuilder:
    return TargetBuilder(WhisperProcessor.from_pretrained(tiny_whisper_en).tokenizer, None)


def test_prompt_ratio_one_prompts_every_target_and_leaves_the_prompt_out_of_the_loss(
    builder, tiny_whisper_en, tmp_path
):
    """Sources in order: the line's 'prompt', the previous segment of the same recording,
    another line's sentence."""
    recording = {"path": "talk.wav"}
    lines = [
        {"audio": recording | {"start_time": 0.0, "end_time": 2.0}, "sentence": "first part"},
        {"audio": recording | {"start_time": 2.0, "end_time": 4.0}, "sentence": "second part"},
        {
            "audio": recording | {"start_time": 4.0, "end_time": 6.0},
            "sentence": "third part",
            "prompt": "the kettle",
        },
        {"audio": {"path": "alone.wav"}, "sentence": "on its own", "duration": 2.0},
        {"audio": {"path": "quiet.wav"}, "sentence": "", "duration": 2.0},
    ]
    utterances, _ = read_manifest(_write_manifest(tmp_path / "m.jsonl", lines))
    assert utterances[2].prompt == "the kettle"
    extractor = WhisperProcessor.from_pretrained(tiny_whisper_en).feature_extractor
    plain = SampleMaker(extractor, builder, seed=3)
    prompted = SampleMaker(extractor, builder, seed=3, prompts=PromptPicker(utterances, 1.0))
    audio = np.zeros(16000, dtype=np.float32)
    sentences = {u.sentence for u in utterances}
    prompts = []
    for index, utterance in enumerate(utterances):
        without, sample = plain(utterance, audio, index), prompted(utterance, audio, index)
        inputs, labels = sample["decoder_input_ids"], sample["labels"]
        assert inputs[0] == builder.special.prev
        start = inputs.index(builder.special.sot)
        # the transcript part is exactly the unprompted target, shift included
        assert inputs[start:] == without["decoder_input_ids"]
        assert labels[start:] == without["labels"]
        assert labels[:start] == [IGNORE] * start  # the prompt is context, not a target
        assert len(inputs) == len(labels)
        prompts.append(builder.tokenizer.decode(inputs[1:start]).strip())
    assert prompts[0] in sentences - {"first part"}  # no earlier segment: drawn from the set
    assert prompts[1] == "first part"  # the previous segment of talk.wav
    assert prompts[2] == "the kettle"  # the line's own prompt wins
    assert prompts[3] in sentences - {"on its own", ""}
    assert prompts[4] in sentences - {""}


def test_prompt_is_cut_to_whispers_prompt_length(builder):
    long_text = " ".join(f"word{i}" for i in range(400))
    target = builder.build(Utterance("a.wav", "hello"), False, 1.0, previous_text=long_text)
    start = target.decoder_input_ids.index(builder.special.sot)
    assert start == 1 + 223  # <|startofprev|> + the last n_text_ctx // 2 - 1 tokens
    assert builder.tokenizer.decode(target.decoder_input_ids[1:start]).endswith("word399")


def test_prompt_ratio_sets_the_share_of_prompted_samples():
    utterances = [Utterance(f"{i}.wav", f"sentence {i}") for i in range(200)]
    picker = PromptPicker(utterances, 0.2)
    rng = np.random.default_rng(0)
    share = np.mean([picker(u, rng) is not None for u in utterances])
    assert 0.12 < share < 0.28
    assert all(PromptPicker(utterances, 0.0)(u, rng) is None for u in utterances)


def test_bad_prompt_field_is_a_one_line_error_naming_the_line(
    manifests, tiny_whisper_en, tmp_path, capsys
):
    domain, _ = manifests
    good = domain.read_text().splitlines()
    bad_line = json.loads(good[1]) | {"prompt": ["not", "text"]}
    bad = domain.parent / "bad_prompt.jsonl"
    bad.write_text(good[0] + "\n" + json.dumps(bad_line) + "\n")
    args = [
        *("finetune", "--train_data", str(bad), "--base_model", str(tiny_whisper_en)),
        *("--output_dir", str(tmp_path), "--num_workers", "0", "--max_steps", "1"),
    ]
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{bad}:2: field 'prompt' must be a string" in err, err


# --- replay -----------------------------------------------------------------------------


def test_replay_mix_adds_that_share_of_general_samples(builder):
    def dataset(prefix: str, count: int) -> ManifestDataset:
        utterances = [Utterance(f"{prefix}{i}.wav", f"{prefix} {i}") for i in range(count)]
        return ManifestDataset(utterances, SampleMaker(None, builder))

    domain, general = dataset("domain", 60), dataset("general", 100)
    mixed = ReplayMix(domain, general, 0.25, seed=1)
    assert len(mixed) == 80 and mixed.utterances[:60] == domain.utterances
    replayed = mixed.utterances[60:]
    assert all(u.sentence.startswith("general") for u in replayed)
    assert len(set(replayed)) == 20  # distinct clips while the replay set has enough
    again = ReplayMix(domain, general, 0.25, seed=1).utterances
    assert again == mixed.utterances
    assert ReplayMix(domain, general, 0.25, seed=2).utterances[60:] != replayed
    small = ReplayMix(domain, dataset("general", 3), 0.5, seed=1)
    assert len(small) == 120 and len(set(small.utterances[60:])) == 3  # cycled


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"replay_ratio": 0.3}, "--replay_ratio 0.3 mixes general speech"),
        ({"replay_ratio": 1.0, "replay_data": "g.jsonl"}, "--replay_ratio 1.0"),
        ({"kl_weight": -1.0}, "--kl_weight -1.0"),
        ({"prompt_ratio": 1.5}, "--prompt_ratio 1.5"),
        ({"warmup_ratio": 1.0}, "--warmup_ratio 1.0"),
    ],
)
def test_out_of_range_options_are_refused(
    manifests, tiny_whisper_en, tmp_path, change, named, finetune_config
):
    with pytest.raises(WhisperTuneError, match=named.replace(".", r"\.")):
        finetune(finetune_config(manifests[0], tiny_whisper_en, tmp_path, **change))


# --- KL to the base model ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("frozen_layers", "warmup_steps", "learning_rates"),
    [
        # an explicit --warmup_steps wins over --warmup_ratio
        (0, 2, [0.0, 5e-3, 1e-2, 5e-3]),
        # the default: 10 % of 4 steps rounds up to 1 warm-up step (lr 0), then the decay
        (None, None, [0.0, 1e-2, 2 / 3 * 1e-2, 1 / 3 * 1e-2]),
    ],
    ids=["full-lora", "cached-encoder"],
)
def test_kl_term_uses_the_base_model_with_the_adapter_disabled(
    manifests,
    tiny_whisper_en,
    tmp_path,
    monkeypatch,
    capsys,
    frozen_layers,
    warmup_steps,
    learning_rates,
    finetune_config,
):
    """Each step's reference logits are the base model's (a separate plain Whisper on the same
    inputs, cached encoder states included), not the adapted ones; the logged loss is the
    cross-entropy plus kl_weight × KL; replayed and prompted samples are in the batches; the
    warm-up follows --warmup_steps or --warmup_ratio."""
    calls = []
    reference_logits, kl_to_reference = distill.reference_logits, distill.kl_to_reference

    def spy_reference(model, inputs):
        logits = reference_logits(model, inputs)
        calls.append({"inputs": {k: v.clone() for k, v in inputs.items()}, "reference": logits})
        return logits

    def spy_kl(reference, logits, labels):
        kl = kl_to_reference(reference, logits, labels)
        calls[-1] |= {"logits": logits.detach().clone(), "kl": float(kl.detach())}
        assert logits.requires_grad and not reference.requires_grad
        return kl

    monkeypatch.setattr(distill, "reference_logits", spy_reference)
    monkeypatch.setattr(distill, "kl_to_reference", spy_kl)
    domain, general = manifests
    weight = 0.5
    result = finetune(
        finetune_config(
            domain,
            tiny_whisper_en,
            tmp_path / "out",
            max_steps=4,
            kl_weight=weight,
            prompt_ratio=0.5,
            replay_data=str(general),
            freeze_encoder_layers=frozen_layers,
            warmup_steps=warmup_steps,
        )
    )
    assert "training on 4 domain + 1 replay samples" in capsys.readouterr().out
    assert len(calls) == 4 == result.steps

    base = load_whisper(str(tiny_whisper_en)).eval()
    if frozen_layers is None:  # the default: bottom half (1 of 2 layers) frozen and cached
        assert calls[0]["inputs"]["input_features"].shape[1:] == (1500, 64)
        run_from_cached_states(base.get_encoder(), 1)
    logged = [entry for entry in _log_history(result) if "kl" in entry]
    assert len(logged) == 4
    tokenizer = WhisperProcessor.from_pretrained(tiny_whisper_en).tokenizer
    prev = tokenizer.convert_tokens_to_ids("<|startofprev|>")
    prompted = replayed = 0
    for step, (call, log) in enumerate(zip(calls, logged, strict=True), 1):
        inputs = call["inputs"]
        with torch.no_grad():
            expected = base(
                input_features=inputs["input_features"],
                decoder_input_ids=inputs["decoder_input_ids"],
            ).logits
        torch.testing.assert_close(call["reference"], expected, rtol=1e-4, atol=1e-4)
        labels = inputs["labels"]
        gap = (call["logits"] - call["reference"])[labels != IGNORE].abs().max()
        # LoRA's B starts at zero and step 1 runs at warm-up's learning rate 0: steps 1 and 2
        # see the base model; from step 3 on, the adapter has moved it
        moved = step > 2
        assert (gap > 1e-3) if moved else (gap < 1e-5), (step, gap)
        assert (call["kl"] > 0) == moved and log["kl"] == pytest.approx(call["kl"], abs=1e-5)
        cross_entropy = torch.nn.functional.cross_entropy(
            call["logits"].flatten(0, 1), labels.flatten(), ignore_index=IGNORE
        )
        assert log["loss"] == pytest.approx(float(cross_entropy) + weight * call["kl"], abs=2e-4)
        prompted += int((inputs["decoder_input_ids"][:, 0] == prev).sum())
        texts = [tokenizer.decode(row[row != IGNORE], skip_special_tokens=True) for row in labels]
        replayed += sum(text.strip() in GENERAL for text in texts)
    assert prompted and replayed, (prompted, replayed)
    assert _learning_rates(result) == pytest.approx(learning_rates)


@pytest.mark.slow
def test_initial_prompt_still_fixes_a_name_after_fine_tuning_with_prompts(
    tmp_path, finetune_config
):
    """Bundled tiny.en writes "Kowalczyk" as "Cowalkzick" unless the prompt spells it; after a
    short fine-tune on other sentences with the default --prompt_ratio, the prompt still fixes
    it. (Measured with this recipe: --prompt_ratio 0.5 or 1 made the prompted decode drop
    "We met Kowalczyk" and print only "at the station"; 1 at lr 1e-4 kept it.)"""
    from peft import PeftModel

    from whisper_tune.resolve import bundled_hf_dir

    sentences = [
        "the valve on line three is open",
        "check the pressure before lunch",
        "the pump in hall two is running",
        "close the gate after the last truck",
    ]
    lines = []
    for i, text in enumerate(sentences):
        write_wav(tmp_path / f"{i}.wav", synthesize(text, "en", seed=i))
        lines.append({"audio": {"path": f"{i}.wav"}, "sentence": text})
    model_dir = bundled_hf_dir("tiny.en")
    result = finetune(
        finetune_config(
            _write_manifest(tmp_path / "train.jsonl", lines),
            model_dir,
            tmp_path / "out",
            max_steps=6,
            learning_rate=1e-3,
            freeze_encoder=True,
        )
    )
    processor = WhisperProcessor.from_pretrained(model_dir)
    tuned = PeftModel.from_pretrained(load_whisper(str(model_dir)), result.final_checkpoint)
    tuned = tuned.merge_and_unload().eval()
    audio = synthesize("We met Kowalczyk at the station.", "en", seed=0)
    features = processor(audio, sampling_rate=16000, return_tensors="pt").input_features

    def transcribe(**options) -> str:
        tokens = tuned.generate(features, num_beams=1, **options)
        return processor.batch_decode(tokens, skip_special_tokens=True)[0]

    assert "Kowalczyk" not in transcribe()
    prompt = processor.get_prompt_ids("Kowalczyk", return_tensors="pt")
    assert "Kowalczyk" in transcribe(prompt_ids=prompt)


def _language_log_probability(model, features, tokenizer, language: str) -> float:
    """The model's log-probability of ``language`` among the language tokens, read after
    ``<|startoftranscript|>`` as language detection reads it."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    codes = [f"<|{code}|>" for code in LANGUAGES]
    ids = tokenizer.convert_tokens_to_ids(codes)
    sot = torch.tensor([[tokenizer.convert_tokens_to_ids("<|startoftranscript|>")]])
    with torch.no_grad():
        logits = model(input_features=features, decoder_input_ids=sot).logits[0, -1, ids]
    return float(logits.log_softmax(-1)[codes.index(f"<|{language}|>")])


def test_a_one_language_set_does_not_teach_language_detection_that_language(
    tiny_whisper_multi, tmp_path, finetune_config, capsys
):
    """Trained on Mandarin lines only, the language token stays out of the loss ('auto'), so
    detection on other speech stays where the base model had it; with --language_id_loss on
    the same run teaches "zh" for everything (on this tiny random model: log-probability
    +0.9 on English speech, against -0.2 with 'auto'); English replay lines make two
    languages and 'auto' trains the token."""
    from peft import PeftModel

    lines = []
    for i, text in enumerate(["今天天气很好", "我们明天去北京", "请把窗户打开"]):
        write_wav(tmp_path / f"{i}.wav", synthesize(f"sentence number {i}", "en", seed=i))
        lines.append({"audio": {"path": f"{i}.wav"}, "sentence": text, "language": "zh"})
    manifest = _write_manifest(tmp_path / "zh.jsonl", lines)
    english = _write_manifest(
        tmp_path / "en.jsonl",
        [{"audio": {"path": "0.wav"}, "sentence": "sentence number zero", "language": "en"}],
    )
    processor = WhisperProcessor.from_pretrained(tiny_whisper_multi)
    heard = synthesize("good morning to you all", "en", seed=9)
    features = processor(heard, sampling_rate=16000, return_tensors="pt").input_features
    base = load_whisper(str(tiny_whisper_multi)).eval()
    before = _language_log_probability(base, features, processor.tokenizer, "zh")

    def tuned_zh(name: str, **options) -> float:
        config = finetune_config(
            manifest, tiny_whisper_multi, tmp_path / name, max_steps=8, **options
        )
        result = finetune(config)
        model = PeftModel.from_pretrained(
            load_whisper(str(tiny_whisper_multi)), result.final_checkpoint
        )
        return _language_log_probability(model.eval(), features, processor.tokenizer, "zh")

    kept = tuned_zh("auto")
    assert "language token not trained: the training data are in one language (zh)" in (
        capsys.readouterr().out
    )
    taught = tuned_zh("on", language_id_loss="on")
    assert taught - before > 0.5, (before, taught)
    assert abs(kept - before) < (taught - before) / 3, (before, kept, taught)
    tuned_zh("mixed", replay_data=str(english), replay_ratio=0.25)
    assert "language token not trained" not in capsys.readouterr().out
