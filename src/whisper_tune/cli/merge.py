"""``whisper-tune merge``: the seed's merge_lora.py arguments."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import add, add_bool

COMMAND = "merge"
HELP = "merge a LoRA/AdaLoRA checkpoint into its base model (standalone HF Whisper dir)"
DESCRIPTION = """\
Merge an adapter checkpoint into its base Whisper model and write
<output_dir>/<base-name>-finetune/ (model, tokenizer, feature extractor, processor, generation
config), loadable by plain transformers without PEFT. The base model is read from the
checkpoint's run_config.json / adapter_config.json unless --base_model is given.
"""


def register(parser: argparse.ArgumentParser) -> None:
    add(
        parser,
        "--lora_model",
        required=True,
        help="adapter checkpoint, e.g. output/whisper-tiny/checkpoint-best/",
    )
    add(parser, "--output_dir", default="models/", help="folder for the merged model")
    add(
        parser,
        "--base_model",
        default=None,
        help="override the base model recorded in the checkpoint",
    )
    add_bool(parser, "--local_files_only", False, "never download the base model from the hub")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.merge import merge_lora

    target = merge_lora(args.lora_model, args.output_dir, args.base_model, args.local_files_only)
    print(f"merged model saved to {target}")
    return 0
