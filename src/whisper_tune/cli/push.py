"""``whisper-tune push``: a fine-tuned model with a generated model card → the Hugging Face Hub."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import add_config_options, config_from_args
from whisper_tune.hub import PushConfig

COMMAND = "push"
HELP = "upload a merged model (+ CTranslate2/GGML variants) with a model card to the Hub"
DESCRIPTION = """\
Write an upload folder (default hub/<name>): the model of --model_path, ct2/ with --ct2,
ggml-model.bin with --ggml, and README.md, a model card with the base model, languages, task,
training data and its size, the training config (run_config.json) and the scores of
--eval_report folders (the pushed model's as model-index metadata the Hub renders, every
model's in a before/after table). Then upload it to --repo_id in one commit (needs network and
a token: huggingface-cli login or HF_TOKEN). --dry_run stops before the upload and lists the files.
"""


def register(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, PushConfig)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.hub import push

    config = config_from_args(PushConfig, args)
    result = push(config)
    action = "would upload" if config.dry_run else "uploaded"
    print(f"{action} {result.folder} to {config.repo_id}:")
    for name in result.files:
        print(f"  {name}")
    if result.url:
        print(result.url)
    return 0
