"""Fine-tuning throughput and memory: ``whisper-tune finetune`` vs a plain Seq2SeqTrainer + PEFT.

On the bundled tiny.en and synthetic English clips, the same data, batch size, steps and
learning rate for three trainers, each repetition a fresh process (so peak RSS is its own):

* ``baseline``: the seed's recipe, written here — a dataset that runs ``WhisperProcessor`` on
  each clip as it is read, the seed's padding collator, ``prepare_model_for_kbit_training``
  and its conv1 ``requires_grad`` hook, LoRA r=32 on q,k,v,out_proj,fc1,fc2 of encoder and
  decoder, ``Seq2SeqTrainer``;
* ``whisper-tune``: :func:`whisper_tune.train.trainer.finetune` with its defaults (the bottom
  half of the encoder, 2 of tiny's 4 layers, frozen and cached; adapters on the top 2 and the
  decoder);
* ``whisper-tune-full``: ``freeze_encoder_layers=0`` (adapters in every layer, the seed's
  full LoRA);
* ``whisper-tune-freeze``: ``freeze_encoder=True`` (decoder-only adapters, each clip's encoder
  output computed once and cached).

Reported: samples/s end to end (model load to saved adapter) and of the training loop alone,
peak RSS, first and final training loss, the loss and WER each adapter reaches on
held-out clips, and its WER on the recorded English speech shipped in the package (general
speech the training did not see). ``--profile`` also samples one run of each trainer with
py-spy and splits its time into phases (feature extraction, encoder/decoder forward,
backward, optimizer...).

Usage: ``python -m bench.finetune [--smoke] [--profile] [--output FILE]``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.harness import (
    REPO_ROOT,
    BenchError,
    answer_probe,
    bench_parser,
    finish,
    machine,
    markdown_table,
    parse_args,
    probe_command,
    probe_env,
    require_positive,
    run_probe,
)

NAME = "finetune"
MODEL = "tiny.en"
# whisper-tune's trainers: the FinetuneConfig options each one sets
WHISPER_TUNE = {
    "whisper-tune": {},
    "whisper-tune-full": {"freeze_encoder_layers": 0},
    "whisper-tune-freeze": {"freeze_encoder": True},
}
TRAINERS = ("baseline", *WHISPER_TUNE)
SEED = 42
LORA = {"r": 32, "lora_alpha": 64, "lora_dropout": 0.05}
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


# --- the baseline: the seed's finetune.py recipe on plain transformers + PEFT ----------------


class SeedDataset:
    """The seed's CustomDataset: read a JSONL manifest; ``WhisperProcessor`` on every read."""

    def __init__(self, manifest: str, processor) -> None:
        lines = Path(manifest).read_text(encoding="utf-8").splitlines()
        self.rows = [json.loads(line) for line in lines if line.strip()]
        self.processor = processor

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        import soundfile

        row = self.rows[index]
        audio, rate = soundfile.read(row["audio"]["path"], dtype="float32")
        return self.processor(audio=audio, sampling_rate=rate, text=row["sentence"])


class SeedCollator:
    """The seed's DataCollatorSpeechSeq2SeqWithPadding: pad features and labels, strip the
    start token when every label begins with it (``shift_tokens_right`` puts it back).

    The seed compares with ``tokenizer.bos_token_id``, which for Whisper is
    ``<|endoftext|>``, so its labels kept a doubled start token; this uses the decoder start
    token, as the Hugging Face fine-tuning guide does, so both trainers learn the same targets.
    """

    def __init__(self, processor, decoder_start_token_id: int) -> None:
        self.processor = processor
        self.decoder_start_token_id = decoder_start_token_id

    def __call__(self, features: list[dict]) -> dict:
        inputs = [{"input_features": f["input_features"][0]} for f in features]
        batch = self.processor.feature_extractor.pad(inputs, return_tensors="pt")
        label_inputs = [{"input_ids": f["labels"]} for f in features]
        padded = self.processor.tokenizer.pad(label_inputs, return_tensors="pt")
        labels = padded["input_ids"].masked_fill(padded["attention_mask"].ne(1), -100)
        if (labels[:, 0] == self.decoder_start_token_id).all().item():
            labels = labels[:, 1:]
        batch["labels"] = labels
        return batch


def train_baseline(spec: dict) -> dict:
    """Fine-tune with the seed's recipe; the timed part runs from model load to saved adapter."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    from whisper_tune.resolve import bundled_hf_dir

    base = str(bundled_hf_dir(MODEL))
    started = time.perf_counter()
    processor = WhisperProcessor.from_pretrained(base, local_files_only=True)
    model = WhisperForConditionalGeneration.from_pretrained(base, local_files_only=True)
    model.config.forced_decoder_ids = None
    model.generation_config.forced_decoder_ids = None
    model = prepare_model_for_kbit_training(model)
    model.model.encoder.conv1.register_forward_hook(
        lambda module, inputs, output: output.requires_grad_(True)
    )
    model = get_peft_model(model, LoraConfig(target_modules=TARGET_MODULES, bias="none", **LORA))
    output_dir = Path(spec["output_dir"])
    arguments = Seq2SeqTrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=spec["batch_size"],
        learning_rate=spec["learning_rate"],
        warmup_steps=spec["warmup_steps"],
        max_steps=spec["steps"],
        logging_steps=1,
        save_strategy="steps",
        save_steps=spec["steps"],
        optim="adamw_torch",
        dataloader_num_workers=spec["num_workers"],
        remove_unused_columns=False,
        label_names=["labels"],
        report_to=["tensorboard"],
        use_cpu=spec.get("device", "cpu") == "cpu",
        fp16=spec.get("device") == "cuda",  # the seed trains in fp16 on a GPU
        seed=SEED,
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=arguments,
        train_dataset=SeedDataset(spec["train_data"], processor),
        data_collator=SeedCollator(processor, model.config.decoder_start_token_id),
        processing_class=processor.feature_extractor,
    )
    loop_started = time.perf_counter()
    trainer.train()
    loop_seconds = time.perf_counter() - loop_started
    final = output_dir / "checkpoint-final"
    trainer.save_model(str(final))
    wall = time.perf_counter() - started
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return _trained(spec, wall, loop_seconds, losses, final, trainer.state.global_step)


# --- whisper-tune ---------------------------------------------------------------------------


def train_whisper_tune(spec: dict, options: dict) -> dict:
    """``finetune(FinetuneConfig(...))`` with the same data, batch size, steps and rate."""
    from whisper_tune.train.config import FinetuneConfig
    from whisper_tune.train.trainer import finetune

    config = FinetuneConfig(
        train_data=spec["train_data"],
        base_model=MODEL,
        output_dir=spec["output_dir"],
        max_steps=spec["steps"],
        per_device_train_batch_size=spec["batch_size"],
        per_device_eval_batch_size=spec["batch_size"],
        learning_rate=spec["learning_rate"],
        warmup_steps=spec["warmup_steps"],
        logging_steps=1,
        save_steps=spec["steps"],
        num_workers=spec["num_workers"],
        **options,
        local_files_only=True,
        seed=SEED,
        lora_r=LORA["r"],
        lora_alpha=LORA["lora_alpha"],
        lora_dropout=LORA["lora_dropout"],
    )
    started = time.perf_counter()
    result = finetune(config)
    wall = time.perf_counter() - started
    losses = [x for x in (result.first_loss, result.last_loss) if x is not None]
    return _trained(spec, wall, result.train_seconds, losses, result.final_checkpoint, result.steps)


def _trained(spec, wall: float, loop: float, losses, adapter: Path, steps: int) -> dict:
    from bench.harness import peak_rss_mib

    samples = steps * spec["batch_size"]
    return {
        "steps": steps,
        "wall_s": round(wall, 3),
        "loop_s": round(loop, 3),
        "samples_per_s": round(samples / wall, 4),
        "loop_samples_per_s": round(samples / loop, 4),
        "first_loss": round(losses[0], 4) if losses else None,
        "final_loss": round(losses[-1], 4) if losses else None,
        "adapter": str(adapter),
        "train_peak_rss_mib": round(peak_rss_mib(), 1),  # before held-out scoring
    }


# --- held-out scoring, the same for every trainer -------------------------------------------


def score(adapter: str | None, heldout: str, real_clips: int | None = None) -> dict:
    """Teacher-forced loss (whisper-tune's targets) and greedy WER of base (+ adapter) on the
    held-out clips; greedy WER on the recorded speech (``real_clips`` of it; None: all)."""
    from whisper_tune.data.manifest import read_manifest
    from whisper_tune.data.real_speech import real_speech
    from whisper_tune.models import load_processor, load_whisper
    from whisper_tune.resolve import resolve_hf_model

    reference = resolve_hf_model(MODEL, True)
    processor = load_processor(reference, True)
    model = load_whisper(reference, True)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model.eval()
    loss, wer = _loss_and_wer(model, processor, read_manifest(heldout)[0])
    return {
        "heldout_loss": round(loss, 4),
        "heldout_wer": round(wer, 4),
        "real_wer": round(_loss_and_wer(model, processor, real_speech(real_clips))[1], 4),
    }


def _loss_and_wer(model, processor, utterances) -> tuple[float, float]:
    """Teacher-forced loss and greedy WER of ``model`` on ``utterances``, in one batch."""
    import torch

    from bench.speech import word_error_rate
    from whisper_tune.data.dataset import Collator, ManifestDataset, SampleMaker
    from whisper_tune.data.targets import TargetBuilder

    make = SampleMaker(processor.feature_extractor, TargetBuilder(processor.tokenizer, None))
    samples = [ManifestDataset(utterances, make)[i] for i in range(len(utterances))]
    batch = Collator(processor.tokenizer.convert_tokens_to_ids("<|endoftext|>"))(samples)
    with torch.inference_mode():
        loss = model(**batch).loss.item()
        tokens = model.generate(batch["input_features"], num_beams=1, max_new_tokens=96)
    hypothesis = " ".join(processor.tokenizer.batch_decode(tokens, skip_special_tokens=True))
    reference_text = " ".join(u.sentence for u in utterances)
    return loss, word_error_rate(reference_text, hypothesis)


def probe(spec: dict) -> dict:
    """In a fresh process: one training run (or, with trainer "none", the base model's score)."""
    if spec["trainer"] == "none":
        return score(None, spec["heldout_data"], spec["real_clips"])
    if spec["trainer"] == "baseline":
        result = train_baseline(spec)
    else:
        result = train_whisper_tune(spec, WHISPER_TUNE[spec["trainer"]])
    if spec.get("score"):
        result |= score(result["adapter"], spec["heldout_data"], spec["real_clips"])
    return result


# --- profiling ------------------------------------------------------------------------------

# Phases a py-spy sample is counted in: the first rule whose marker occurs in its stack wins.
PHASES = (
    ("encoder cache, built once", ("EncoderStateCache.__init__ (",)),
    ("backward", ("_engine_run_backward", "backward (torch/")),
    ("optimizer step", ("torch/optim/", "accelerate/optimizer.py")),
    ("audio decode", ("load_audio (", "soundfile.py")),
    (
        "feature extraction",
        ("feature_extraction_whisper.py", "feature_extraction_sequence_utils.py"),
    ),
    ("encoder forward", ("WhisperEncoder.forward (", "run_from_cached_states.")),
    ("decoder forward", ("WhisperDecoder.forward (",)),
    ("head + loss", ("WhisperForConditionalGeneration.forward (", "loss_utils.py")),
    ("collate / tokenise", ("collate", "tokenization_", "Collator.__call__")),
    ("model load", ("from_pretrained",)),
    ("adapter setup", ("get_peft_model", "inject_adapter", "prepare_model_for_kbit_training")),
    ("checkpoint save", ("save_model", "_save_checkpoint", "save_pretrained", "copytree")),
    ("imports", ("_find_and_load",)),
)


def profile(spec: dict, folder: Path) -> dict[str, float]:
    """Sample one training run with py-spy; the share of samples in each phase."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise BenchError("--profile needs py-spy: pip install py-spy")
    raw = folder / f"{spec['trainer']}.pyspy.txt"
    command = [py_spy, "record", "--format", "raw", "--rate", "25", "-o", str(raw), "--"]
    command += probe_command(f"bench.{NAME}", spec)
    done = subprocess.run(command, cwd=REPO_ROOT, env=probe_env(), capture_output=True, text=True)
    if done.returncode != 0 or not raw.is_file():
        raise BenchError(f"py-spy failed: {(done.stdout + done.stderr)[-2000:]}")
    return phase_shares(raw.read_text(encoding="utf-8"))


def phase_shares(raw: str) -> dict[str, float]:
    """Fractions of py-spy's collapsed stacks (``Class.function (file:line);...  count``) per
    phase; empty stacks and helper threads blocked in a wait are left out."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack.strip(" (") or not count.isdigit() or _waiting(stack):
            continue
        phase = next((name for name, marks in PHASES if any(m in stack for m in marks)), "other")
        counts[phase] += int(count)
    total = sum(counts.values()) or 1
    return {name: round(counts[name] / total, 4) for name in [*(p for p, _ in PHASES), "other"]}


def _waiting(stack: str) -> bool:
    """A helper thread blocked in a wait (tqdm's monitor, TensorBoard's writer): not work."""
    innermost = stack.rsplit(";", 1)[-1]
    return innermost.startswith(("Condition.wait (", "Event.wait (", "Queue.get ("))


# --- the run --------------------------------------------------------------------------------


def make_data(folder: Path, smoke: bool) -> dict:
    """Synthesise train and held-out clips (domain sentences, terms held out fairly)."""
    from bench.speech import spoken
    from whisper_tune.corpus_text import ENGLISH_DOMAIN, ENGLISH_TERMS, train_test_split
    from whisper_tune.synth import save_wav

    train_text, test_text = train_test_split(ENGLISH_DOMAIN, 0.25, seed=0, terms=ENGLISH_TERMS)
    sizes = (2, 1) if smoke else (32, 8)
    manifests = {}
    for part, texts, n in (("train", train_text, sizes[0]), ("heldout", test_text, sizes[1])):
        lines = []
        for i, speech in enumerate(spoken(texts[:n], seed=100 if part == "heldout" else 0)):
            path = save_wav(folder / f"{part}{i}.wav", speech.audio)
            record = {"audio": {"path": str(path)}, "sentence": speech.text}
            lines.append(json.dumps(record | {"duration": round(speech.seconds, 3)}))
        manifests[part] = folder / f"{part}.jsonl"
        manifests[part].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"train": str(manifests["train"]), "heldout": str(manifests["heldout"]), "sizes": sizes}


def main(argv: Sequence[str] | None = None) -> dict | None:
    parser = bench_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps (default 12; smoke 1)"
    )
    parser.add_argument(
        "--batch_size", type=int, default=None, help="per-step batch (default 8; smoke 1)"
    )
    parser.add_argument("--learning_rate", type=float, default=1e-3, help="the seed's default")
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader workers for all")
    parser.add_argument(
        "--profile", action="store_true", help="also sample one run of each trainer with py-spy"
    )
    args = parse_args(parser, argv, NAME)
    if args.probe:
        answer_probe(probe(json.loads(args.probe)))
        return None
    trainers = TRAINERS[:3] if args.smoke else TRAINERS  # freeze differs from full by an option
    steps = args.steps or (1 if args.smoke else 12)
    batch_size = args.batch_size or (1 if args.smoke else 8)
    record = {"name": NAME, "machine": machine(), "model": MODEL}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = make_data(folder, args.smoke)
        base = {
            "train_data": data["train"],
            "heldout_data": data["heldout"],
            "steps": steps,
            "batch_size": batch_size,
            "learning_rate": args.learning_rate,
            "warmup_steps": min(2, steps - 1),
            "num_workers": args.num_workers,
            "real_clips": 2 if args.smoke else None,  # recorded clips scored (None: all 12)
        }
        record["setup"] = {
            **{k: v for k, v in base.items() if not k.endswith("_data")},
            "train_clips": data["sizes"][0],
            "heldout_clips": data["sizes"][1],
            "epochs": round(steps * batch_size / data["sizes"][0], 2),
            "lora": LORA,
            "target_modules": TARGET_MODULES,
        }

        def spec(trainer: str, run: str, scored: bool) -> dict:
            return base | {"trainer": trainer, "output_dir": str(folder / run), "score": scored}

        if not args.smoke:
            print(f"  {NAME}: scoring the base model", file=sys.stderr, flush=True)
            record["base_model_score"] = run_probe(f"bench.{NAME}", spec("none", "none", False))
        for index in range(args.warmup):
            for trainer in trainers:
                print(f"  {NAME}: warm-up {trainer}", file=sys.stderr, flush=True)
                run_probe(f"bench.{NAME}", spec(trainer, f"warm{index}-{trainer}", False))
        runs: dict[str, list[dict]] = {t: [] for t in trainers}
        for index in range(args.repeats):
            shift = index % len(trainers)
            order = trainers[shift:] + trainers[:shift]
            for trainer in order:
                print(f"  {NAME}: round {index + 1} {trainer}", file=sys.stderr, flush=True)
                run = spec(trainer, f"run{index}-{trainer}", scored=not runs[trainer])
                # a smoke run trains in this process: quicker, but its peak RSS is shared
                runs[trainer].append(probe(run) if args.smoke else run_probe(f"bench.{NAME}", run))
        record["trainers"] = [summarize(trainer, results) for trainer, results in runs.items()]
        record["runs"] = runs
        if args.profile:
            record["profile"] = {}
            for trainer in trainers:
                print(f"  {NAME}: py-spy on {trainer}", file=sys.stderr, flush=True)
                record["profile"][trainer] = profile(
                    spec(trainer, f"profile-{trainer}", False), folder
                )
    record["ratios"] = ratios(record["trainers"])
    if args.smoke:
        check(record)
    return finish(args, NAME, record, tables(record))


def summarize(trainer: str, results: list[dict]) -> dict:
    """Median and best of the repetitions; losses from the first (runs are seeded alike)."""

    def values(key: str) -> list[float]:
        return [r[key] for r in results]

    first = results[0]
    return {
        "trainer": trainer,
        "samples_per_s_median": round(statistics.median(values("samples_per_s")), 4),
        "samples_per_s_max": round(max(values("samples_per_s")), 4),
        "loop_samples_per_s_median": round(statistics.median(values("loop_samples_per_s")), 4),
        "wall_s_median": round(statistics.median(values("wall_s")), 3),
        "wall_s_min": round(min(values("wall_s")), 3),
        "peak_rss_mib_median": round(statistics.median(values("train_peak_rss_mib")), 1),
        "first_loss": first["first_loss"],
        "final_loss": first["final_loss"],
        "heldout_loss": first.get("heldout_loss"),
        "heldout_wer": first.get("heldout_wer"),
        "real_wer": first.get("real_wer"),
    }


def ratios(trainers: list[dict]) -> dict:
    """Each whisper-tune trainer's samples/s (end to end and loop) over the baseline's."""
    baseline = next(t for t in trainers if t["trainer"] == "baseline")
    found = {}
    for kind in ("samples_per_s", "loop_samples_per_s"):
        for row in trainers:
            if row["trainer"] != "baseline":
                ratio = row[f"{kind}_median"] / baseline[f"{kind}_median"]
                found[f"{row['trainer']}_vs_baseline_{kind}"] = round(ratio, 3)
    return found


def check(record: dict) -> None:
    for row in record["trainers"]:
        keys = ["samples_per_s_median", "loop_samples_per_s_median", "peak_rss_mib_median"]
        require_positive(row, keys + ["final_loss", "heldout_loss"], row["trainer"])


def tables(record: dict) -> list[str]:
    rows = [
        [
            t["trainer"],
            t["samples_per_s_median"],
            t["samples_per_s_max"],
            t["loop_samples_per_s_median"],
            t["peak_rss_mib_median"],
            t["first_loss"],
            t["final_loss"],
            t["heldout_loss"],
            t["heldout_wer"],
            t["real_wer"],
        ]
        for t in record["trainers"]
    ]
    if "base_model_score" in record:
        base = record["base_model_score"]
        rows.append(
            ["(base model)", *[""] * 6, base["heldout_loss"], base["heldout_wer"], base["real_wer"]]
        )
    out = [
        markdown_table(
            [
                "trainer",
                "samples/s median",
                "samples/s best",
                "loop samples/s",
                "peak RSS MiB",
                "first loss",
                "final loss",
                "held-out loss",
                "held-out WER",
                "recorded-speech WER",
            ],
            rows,
        ),
        markdown_table(["ratio", "value"], list(record["ratios"].items())),
    ]
    if "profile" in record:
        phases = list(next(iter(record["profile"].values())))
        out.append(
            markdown_table(
                ["phase (share of py-spy samples)", *record["profile"]],
                [
                    [phase, *(f"{100 * p[phase]:.1f}%" for p in record["profile"].values())]
                    for phase in phases
                ],
            )
        )
    return out


if __name__ == "__main__":
    main()
