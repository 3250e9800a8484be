"""``whisper-tune finetune``: the seed's finetune.py arguments."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import add_config_options, config_from_args
from whisper_tune.train.config import FinetuneConfig

COMMAND = "finetune"
HELP = "fine-tune Whisper with LoRA or AdaLoRA on a JSONL manifest (or shards)"
DESCRIPTION = """\
Fine-tune a Whisper model with a LoRA (default) or AdaLoRA adapter. Checkpoints go to
<output_dir>/<model-name>/checkpoint-N, plus checkpoint-final (last step) and checkpoint-best;
each holds the adapter, the processor and run_config.json. With --test_data, every --eval_steps
the model greedily transcribes the first --eval_max_samples test utterances and the --metric
(wer/cer) is logged to TensorBoard next to the eval loss; checkpoint-best is the lowest metric
(--metric_for_best_model loss: the lowest eval loss). With --regression_data (general speech
the model must not forget), checkpoint-best is chosen only among checkpoints whose metric on
it stays within --max_regression of the base model's.
Multi-process and multi-node: torchrun --nproc_per_node=2 -m whisper_tune.cli finetune ... or
accelerate launch -m whisper_tune.cli finetune ... (see configs/ for accelerate and DeepSpeed,
and the README for several machines and SLURM).
"""


def register(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, FinetuneConfig)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.train.trainer import finetune

    result = finetune(config_from_args(FinetuneConfig, args))
    if result.first_loss is not None:
        print(
            f"loss {result.first_loss:.4f} → {result.last_loss:.4f} in {result.steps} steps "
            f"({result.train_seconds:.1f} s)"
        )
    if result.best_eval_loss is not None:
        print(f"eval loss at checkpoint-best {result.best_eval_loss:.4f}")
    if result.skipped_audio:
        print(f"skipped {result.skipped_audio} unreadable audio files")
    if not result.wrote_checkpoints:  # another process of a multi-process run wrote them
        print("checkpoints: written by rank 0 (--save_on_each_node: by each node's first process)")
        return 0
    print(f"final checkpoint: {result.final_checkpoint}")
    best = f"best checkpoint:  {result.best_checkpoint}"
    if result.best_step is not None:
        value = result.best_metric if result.best_metric is not None else result.best_eval_loss
        name = result.metric if result.best_metric is not None else "eval loss"
        best += f" (step {result.best_step}, {name} {value:.4f})"
    print(best)
    for tracker, where in result.tracking.items():
        print(f"{tracker}: {where}")
    if "tensorboard" in result.tracking:
        print(f"  view: tensorboard --logdir {result.run_dir}")
    print(f"next: whisper-tune merge --lora_model {result.best_checkpoint}")
    return 0
