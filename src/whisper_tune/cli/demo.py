"""``whisper-tune demo``: the whole pipeline on a bundled model, offline, in minutes."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import add, add_bool

COMMAND = "demo"
HELP = "synthesise a corpus, evaluate, fine-tune, merge, re-evaluate, convert: before/after table"
DESCRIPTION = """\
Walk the whole whisper-tune path offline on a bundled model: synthesise a small
domain-adaptation corpus (sentences full of invented names and terms + general sentences +
no-speech clips; held-out sentences never trained on), evaluate the stock model, fine-tune it
with LoRA on the CPU, merge, evaluate again, convert to CTranslate2 (parity-checked),
transcribe a held-out clip with timestamps and check a silent clip stays silent.
--language en uses tiny.en and WER; --language zh uses multilingual base and CER
(traditional→simplified, punctuation removed). Everything lands in --output_dir with
report.md and report.json.
"""


def register(parser: argparse.ArgumentParser) -> None:
    add(parser, "--output_dir", default="demo_output", help="folder for every artefact")
    add(
        parser,
        "--language",
        default="en",
        choices=["en", "zh", "English", "Chinese"],
        help="recipe: en (tiny.en, WER) or zh (base, CER)",
    )
    add(
        parser,
        "--base_model",
        default=None,
        help="model to fine-tune instead of the recipe's bundled one",
    )
    add(parser, "--epochs", type=float, default=None, help="training epochs (default: en 6, zh 4)")
    add(parser, "--batch_size", type=int, default=8, help="training batch size")
    add(parser, "--seed", type=int, default=0, help="seed for the corpus split and synthesis")
    add_bool(
        parser,
        "--quick",
        False,
        "smoke run: a third of the sentences and 2 epochs (every step, smaller gains)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.demo import DemoConfig, run_demo

    report = run_demo(
        DemoConfig(
            output_dir=args.output_dir,
            language=args.language,
            base_model=args.base_model,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            quick=args.quick,
        )
    )
    print()
    print(report.table())
    print(f"\nheld-out clip: {report.held_out_clip.get('text')!r}")
    print(f"segment timestamps after fine-tuning: {'yes' if report.timestamps_ok else 'NO'}")
    print(f"silent clip transcribed as: {report.silence_text!r}")
    print(f"report: {args.output_dir}/report.md (total {report.total_seconds:.0f} s)")
    if not report.ct2_parity_ok:
        print("the CTranslate2 conversion FAILED its parity check (see the report)")
        return 1
    return 0
