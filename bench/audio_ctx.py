"""Dynamic audio context (issue 24): full 30 s windows vs ``--audio_ctx``, stock vs tuned.

On short held-out clips (1-10 s: synthetic English from the project's voice, and the packaged
recorded speech), side by side in one run, CTranslate2 int8, one call per clip, beam 5:

* stock tiny.en with full windows, and with the short context forced (``--audio_ctx 100``:
  the same rounding as ``auto`` on a tuned model; a stock model was not trained for it),
* tiny.en after a short ``finetune --dynamic_audio_ctx`` run (merged, converted to int8), with
  ``--audio_ctx full``, ``auto`` (2 s floor) and ``200`` (a 4 s floor),
* the same tuned model exported with ``export-ggml`` (f16) in whisper.cpp, with full windows
  and with ``auto`` (``-ac`` per clip),

giving seconds per set of clips by length, the speed ratio full / short, and WER by length
and source. The tuning is part of the run (a few minutes on a CPU); ``--steps`` sets it. Its
training clips are labelled the way unlabelled audio is: ``whisper-tune label`` with stock
tiny.en, the model the tuning starts from (``--script_labels``: their scripts instead).

Usage: ``python -m bench.audio_ctx [--smoke] [--steps N] [--audio_ctx_weight W]
[--script_labels] [--keep DIR] [--tuned DIR] [--output FILE]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.harness import bench_parser, finish, machine, markdown_table, parse_args, side_by_side
from bench.speech import Speech, corpus_word_error_rate, spoken

NAME = "audio_ctx"
MODEL = "tiny.en"
BUCKETS = ((1.0, 3.0), (3.0, 6.0), (6.0, 10.0))  # clip seconds: [low, high)
# (model, --audio_ctx): stock full / stock forced short / tuned full / tuned auto (2 s floor) /
# tuned with a 4 s floor / the tuned model's GGML export in whisper.cpp, full and auto (-ac)
CONFIGS = (
    ("stock", "full"),
    ("stock", "100"),
    ("tuned", "full"),
    ("tuned", "auto"),
    ("tuned", "200"),
    ("tuned-ggml", "full"),
    ("tuned-ggml", "auto"),
)
SHORT = {"stock": "100", "tuned": "auto", "tuned-ggml": "auto"}  # each model's short context
TRAIN_SPEEDS = (0.9, 1.0, 1.15)
# a CPU step (batch 4; the teacher's four 30 s windows dominate) took 18-26 s on the shared VM;
# 3e-3 without warm-up wrecked the model in one step
# --audio_ctx_weight: finetune's default; 10 drifted 5.6 WER points from stock, 1 drifted 0.9
# (docs/benchmarks.md §6, runs 3 and 4)
DEFAULT_STEPS, BATCH, LEARNING_RATE, CTX_WEIGHT = 12, 4, 1e-3, 1.0


def _bucket(seconds: float) -> str | None:
    for low, high in BUCKETS:
        if low <= seconds < high:
            return f"{low:g}-{high:g} s"
    return None


def _pairs(speech: Sequence[Speech]) -> list[Speech]:
    """Consecutive clips joined (0.4 s apart) for 6-10 s examples."""
    from whisper_tune.synth import concatenate

    joined = []
    for first, second in zip(speech[::2], speech[1::2], strict=False):
        audio = concatenate([first.audio, second.audio], 0.4)
        joined.append(Speech(audio, f"{first.text} {second.text}"))
    return joined


def heldout_sets(smoke: bool) -> dict[str, list[Speech]]:
    """Held-out clips of 1-10 s: synthetic (general sentences not trained on, single and in
    pairs) and the packaged recordings."""
    from whisper_tune.audio import load_audio
    from whisper_tune.corpus_text import ENGLISH_GENERAL
    from whisper_tune.data.real_speech import real_speech

    sentences = list(ENGLISH_GENERAL[1::2])[: 2 if smoke else 12]
    singles = spoken(sentences, seed=500)
    synthetic = singles + _pairs(singles)
    recorded = real_speech(2 if smoke else None)
    real = [Speech(load_audio(u.audio_path), u.sentence) for u in recorded]
    sets = {"synthetic": synthetic, "recorded": real}
    return {name: [s for s in clips if _bucket(s.seconds)] for name, clips in sets.items()}


def training_manifest(folder: Path, smoke: bool, script_labels: bool = False) -> Path:
    """Synthetic clips of 0.5-10 s (general sentences not held out, domain sentences, their
    first three words, pairs of sentences, at three speeds) as a training manifest: labelled
    by stock tiny.en with ``whisper-tune label`` (its defaults: VAD, timestamps, filters), as
    unlabelled audio would be, or with ``script_labels`` by the sentences they were made from."""
    from whisper_tune.corpus_text import ENGLISH_DOMAIN, ENGLISH_GENERAL
    from whisper_tune.data.manifest import Utterance, write_manifest
    from whisper_tune.engine_settings import EngineSettings
    from whisper_tune.inference import TranscribeOptions
    from whisper_tune.label.filters import LabelFilters
    from whisper_tune.label.run import label_files
    from whisper_tune.synth import save_wav, synthesize

    texts = list(ENGLISH_GENERAL[0::2]) + list(ENGLISH_DOMAIN)
    texts = texts[:2] if smoke else texts
    texts += [" ".join(text.split()[:3]) for text in texts[::2]]  # 2 s contexts need examples
    print(f"  synthesising {len(texts)} training sentences", file=sys.stderr, flush=True)
    clips = [
        Speech(synthesize(t, "en", TRAIN_SPEEDS[i % 3], seed=i), t) for i, t in enumerate(texts)
    ]
    chosen = [s for s in clips + _pairs(clips) if s.seconds <= 10.5]
    paths = [save_wav(folder / f"train{i}.wav", s.audio) for i, s in enumerate(chosen)]
    manifest = folder / "train.jsonl"
    if script_labels:
        utterances = [Utterance(str(p), s.text) for p, s in zip(paths, chosen, strict=True)]
        write_manifest(manifest, utterances)
        return manifest
    options = TranscribeOptions(language="en", beam_size=5, vad_filter=True)
    summary = label_files(paths, EngineSettings(MODEL), options, LabelFilters(), manifest)
    print(summary.text(), file=sys.stderr, flush=True)
    return manifest


def tune(folder: Path, steps: int, smoke: bool, recipe: argparse.Namespace) -> dict:
    """``finetune --dynamic_audio_ctx`` of tiny.en, merged and converted to CTranslate2 int8;
    ``recipe`` holds the bench's --audio_ctx_weight and --script_labels."""
    from whisper_tune.convert.ct2_export import convert_to_ct2
    from whisper_tune.convert.ggml import export_ggml
    from whisper_tune.merge import merge_lora
    from whisper_tune.train.config import FinetuneConfig
    from whisper_tune.train.trainer import finetune

    manifest = training_manifest(folder, smoke, recipe.script_labels)
    config = FinetuneConfig(
        train_data=str(manifest),
        base_model=MODEL,
        output_dir=str(folder / "out"),
        dynamic_audio_ctx=True,
        audio_ctx_weight=recipe.audio_ctx_weight,
        timestamps=True,  # half the samples with timestamps: transcribe decodes with them
        freeze_encoder_layers=0,
        max_steps=steps,
        per_device_train_batch_size=BATCH,
        learning_rate=LEARNING_RATE,
        logging_steps=max(1, steps // 10),
        save_steps=10_000,
        num_workers=0,
        local_files_only=True,
    )
    started = time.perf_counter()
    result = finetune(config)
    seconds = time.perf_counter() - started
    merged = merge_lora(result.final_checkpoint, folder / "merged", local_files_only=True)
    ct2_dir = folder / "tuned-ct2"
    convert_to_ct2(str(merged), ct2_dir, quantization="int8", check=False)
    ggml = folder / "tuned-ggml.bin"
    export_ggml(merged, ggml, local_files_only=True)
    return {
        "ct2_dir": str(ct2_dir),
        "ggml": str(ggml),
        "steps": result.steps,
        "train_seconds": round(seconds, 1),
        "train_clips": sum(1 for _ in manifest.open()),
        "first_loss": result.first_loss,
        "last_loss": result.last_loss,
        "recipe": "finetune --dynamic_audio_ctx --timestamps --freeze_encoder_layers 0 --max_steps "
        f"{steps} --per_device_train_batch_size {BATCH} --learning_rate {LEARNING_RATE} "
        f"--audio_ctx_weight {recipe.audio_ctx_weight}"
        + " (LoRA r 32)"
        + (
            ", on the clips' scripts"
            if recipe.script_labels
            else ", on stock tiny.en's labels (whisper-tune label)"
        ),
    }


def measure(models: dict[str, str], sets: dict, repeats: int, warmup: int) -> dict:
    """Seconds and transcripts of every (model, --audio_ctx) config on each length bucket."""
    from whisper_tune.inference import TranscribeOptions, load_transcriber

    options = TranscribeOptions(language="en", beam_size=5)
    clips = [(name, s) for name, group in sets.items() for s in group]
    buckets = {b: [c for c in clips if _bucket(c[1].seconds) == b] for b in _bucket_names()}
    cases = {}
    for model, audio_ctx in CONFIGS:
        transcriber = load_transcriber(models[model], audio_ctx=audio_ctx)
        for bucket, chosen in buckets.items():

            def run(transcriber=transcriber, chosen=chosen) -> list[str]:
                texts = []
                for _, speech in chosen:
                    segments, _ = transcriber.transcribe(speech.audio, options)
                    texts.append(" ".join(s.text for s in segments))
                return texts

            cases[f"{model}|{audio_ctx}|{bucket}"] = run
    timings = side_by_side(cases, repeats, warmup, label=NAME)
    return {"timings": timings, "buckets": buckets}


def _bucket_names() -> list[str]:
    return [f"{low:g}-{high:g} s" for low, high in BUCKETS]


def summarize(measured: dict) -> list[dict]:
    """One row per config: seconds and WER per length bucket and source, and overall."""
    timings, buckets = measured["timings"], measured["buckets"]
    rows = []
    for model, audio_ctx in CONFIGS:
        row: dict = {"model": model, "audio_ctx": audio_ctx, "seconds": {}, "wer": {}}
        pairs_by: dict[str, list[tuple[str, str]]] = {}
        total = 0.0
        for bucket, chosen in buckets.items():
            timing = timings[f"{model}|{audio_ctx}|{bucket}"]
            row["seconds"][bucket] = round(timing.median, 3)
            total += timing.median
            for (source, speech), text in zip(chosen, timing.output, strict=True):
                for key in (bucket, source, "all"):
                    pairs_by.setdefault(key, []).append((speech.text, text))
        row["seconds"]["all"] = round(total, 3)
        row["wer"] = {
            key: round(corpus_word_error_rate(pairs), 4) for key, pairs in pairs_by.items()
        }
        rows.append(row)
    return rows


def ratios(rows: list[dict]) -> dict:
    """Speed of full windows / short context for each model, per bucket and overall."""
    by = {(r["model"], r["audio_ctx"]): r for r in rows}
    out = {}
    for model, short in (*SHORT.items(), ("tuned", "200")):
        full, fast = by[(model, "full")]["seconds"], by[(model, short)]["seconds"]
        ratio = {key: round(full[key] / fast[key], 2) for key in full if fast[key] > 0}
        out[f"{model} {short}"] = ratio
    return out


def goal(rows: list[dict], speed: dict) -> dict:
    """Issue 24: tuned auto >= 2x faster than tuned full, WER within 0.5 point of stock full."""
    by = {(r["model"], r["audio_ctx"]): r for r in rows}
    stock_wer = by[("stock", "full")]["wer"]["all"]
    tuned_wer = by[("tuned", "auto")]["wer"]["all"]
    return {
        "speedup": speed["tuned auto"]["all"],
        "speedup_met": speed["tuned auto"]["all"] >= 2.0,
        "wer_gap_points": round(100 * (tuned_wer - stock_wer), 2),
        "wer_met": tuned_wer - stock_wer <= 0.005,
    }


def tables(record: dict) -> list[str]:
    buckets = [*_bucket_names(), "all"]
    counts = record["clips_per_bucket"]
    speed_rows = [
        [
            f"{r['model']} --audio_ctx {r['audio_ctx']}",
            *[r["seconds"][b] for b in buckets],
        ]
        for r in record["rows"]
    ]
    for name, values in record["speed_ratio"].items():
        speed_rows.append([f"{name}: full / short", *[f"{values[b]}x" for b in buckets]])
    headers = ["CTranslate2 int8, seconds", *[f"{b} ({counts.get(b, 0)})" for b in buckets]]
    wer_keys = [*_bucket_names(), "synthetic", "recorded", "all"]
    wer_rows = [
        [f"{r['model']} --audio_ctx {r['audio_ctx']}", *[r["wer"].get(k, "") for k in wer_keys]]
        for r in record["rows"]
    ]
    goal_row = record["goal"]
    return [
        markdown_table(headers, speed_rows),
        markdown_table(["WER", *wer_keys], wer_rows),
        f"goal (tuned auto vs full >= 2x, WER within 0.5 point of stock full): "
        f"{goal_row['speedup']}x ({'met' if goal_row['speedup_met'] else 'not met'}), "
        f"WER gap {goal_row['wer_gap_points']} points "
        f"({'met' if goal_row['wer_met'] else 'not met'})",
    ]


def main(argv: Sequence[str] | None = None) -> dict | None:
    parser = bench_parser(NAME, __doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"fine-tuning steps (default {DEFAULT_STEPS}; smoke 1)",
    )
    parser.add_argument(
        "--audio_ctx_weight",
        type=float,
        default=CTX_WEIGHT,
        help=f"the tuning's --audio_ctx_weight (default {CTX_WEIGHT:g}, finetune's default)",
    )
    parser.add_argument(
        "--script_labels",
        action="store_true",
        help="train on the sentences the clips were synthesised from, not on stock tiny.en's "
        "labels of them (the recipe for unlabelled audio: whisper-tune label, then finetune)",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="folder that keeps the training data and models"
    )
    parser.add_argument(
        "--tuned",
        type=Path,
        default=None,
        help="the --keep folder of an earlier run: its tuned-ct2 and tuned-ggml.bin are "
        "measured again, no tuning",
    )
    args = parse_args(parser, argv, NAME)
    steps = args.steps or (1 if args.smoke else DEFAULT_STEPS)
    record: dict = {"machine": machine(), "model": MODEL, "configs": CONFIGS}
    with tempfile.TemporaryDirectory(prefix="bench-audio-ctx-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if args.tuned:
            record["tuning"] = {"folder": str(args.tuned)}
            tuned = {"ct2_dir": args.tuned / "tuned-ct2", "ggml": args.tuned / "tuned-ggml.bin"}
        else:
            record["tuning"] = tune(folder, steps, args.smoke, args)
            tuned = {key: record["tuning"].pop(key) for key in ("ct2_dir", "ggml")}
        sets = heldout_sets(args.smoke)
        models = {"stock": MODEL, "tuned": str(tuned["ct2_dir"]), "tuned-ggml": str(tuned["ggml"])}
        measured = measure(models, sets, args.repeats, args.warmup)
    record["clips_per_bucket"] = {b: len(c) for b, c in measured["buckets"].items()}
    record["clips_per_bucket"]["all"] = sum(record["clips_per_bucket"].values())
    record["rows"] = summarize(measured)
    record["speed_ratio"] = ratios(record["rows"])
    record["goal"] = goal(record["rows"], record["speed_ratio"])
    return finish(args, NAME, record, tables(record))


if __name__ == "__main__":
    main()
