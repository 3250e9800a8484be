"""``whisper-tune finetune``: the seed's finetune.py arguments."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import add, add_bool
from whisper_tune.train.config import DEFAULT_TARGET_MODULES

COMMAND = "finetune"
HELP = "fine-tune Whisper with LoRA or AdaLoRA on a JSONL manifest (or shards)"
DESCRIPTION = """\
Fine-tune a Whisper model with a LoRA (default) or AdaLoRA adapter. Checkpoints go to
<output_dir>/<model-name>/checkpoint-N, plus checkpoint-final (last step) and checkpoint-best
(lowest eval loss on --test_data); each holds the adapter, the processor and run_config.json.
Multi-process: torchrun --nproc_per_node=2 -m whisper_tune.cli finetune ... or
accelerate launch -m whisper_tune.cli finetune ... (see configs/ for accelerate and DeepSpeed).
"""


def register(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    add(
        data,
        "--train_data",
        required=True,
        help="training manifest (JSONL, one utterance per line) or a sharded corpus folder",
    )
    add(
        data,
        "--test_data",
        default=None,
        help="evaluation manifest; enables eval loss every --eval_steps and checkpoint-best",
    )
    add(
        data,
        "--language",
        default=None,
        help="language of the data (code or name: zh, Chinese, en); a per-line 'language' wins. "
        "Required for multilingual models unless every line has one",
    )
    add(
        data,
        "--task",
        default="transcribe",
        choices=["transcribe", "translate"],
        help="decoder task token",
    )
    add_bool(
        data,
        "--timestamps",
        False,
        "train timestamp prediction too: lines with 'sentences' use their start/end, others "
        "the whole clip; --timestamp_ratio of samples get timestamped targets",
    )
    add(
        data,
        "--timestamp_ratio",
        type=float,
        default=0.5,
        help="share of samples with timestamped targets when --timestamps is on",
    )
    add(data, "--min_audio_len", type=float, default=0.5, help="skip clips shorter (seconds)")
    add(data, "--max_audio_len", type=float, default=30.0, help="skip clips longer (seconds)")
    add_bool(
        data,
        "--skip_bad",
        False,
        "skip and count bad manifest lines and unreadable audio instead of stopping",
    )
    add(
        data,
        "--augment_config_path",
        default=None,
        help="JSON list of augmentations ({type, params, prob}: speed, shift, volume, resample, "
        "noise) applied on the fly",
    )
    add(
        data,
        "--shuffle_buffer",
        type=int,
        default=1000,
        help="shuffle buffer size when streaming a sharded corpus",
    )

    model = parser.add_argument_group("model and adapter")
    add(
        model,
        "--base_model",
        default="tiny.en",
        help="bundled name (tiny.en, base), local Hugging Face Whisper dir, or hub id "
        "such as openai/whisper-tiny",
    )
    add(model, "--output_dir", default="output/", help="where checkpoints are written")
    add_bool(
        model,
        "--use_adalora",
        False,
        "AdaLoRA instead of LoRA (rank budget reallocated every step)",
    )
    add(model, "--lora_r", type=int, default=32, help="LoRA rank")
    add(model, "--lora_alpha", type=int, default=64, help="LoRA scaling alpha")
    add(model, "--lora_dropout", type=float, default=0.05, help="LoRA dropout")
    add(
        model,
        "--target_modules",
        nargs="+",
        default=list(DEFAULT_TARGET_MODULES),
        help="module names that get adapters",
    )
    add(model, "--adalora_init_r", type=int, default=12, help="AdaLoRA initial rank")
    add(model, "--adalora_target_r", type=int, default=4, help="AdaLoRA average target rank")
    add_bool(
        model,
        "--freeze_encoder",
        False,
        "adapters in the decoder only: the encoder is not trained, and each clip is "
        "encoded once and cached (several times faster on CPU)",
    )
    add(
        model,
        "--freeze_encoder_layers",
        type=int,
        default=0,
        help="leave the bottom N encoder layers without adapters; their output is computed "
        "once per clip and cached, so training costs only the layers above (a middle way "
        "between full LoRA and --freeze_encoder that still adapts to new acoustics)",
    )
    add_bool(
        model,
        "--cache_encoder_outputs",
        True,
        "with frozen encoder layers, keep each clip's hidden state below the trained layers in "
        "memory across epochs "
        "(off automatically with augmentation, shards or a cache over --encoder_cache_gb)",
    )
    add(
        model,
        "--encoder_cache_gb",
        type=float,
        default=4.0,
        help="memory budget for the encoder-output cache",
    )
    add_bool(model, "--use_8bit", False, "load the base model in 8 bit (needs CUDA + bitsandbytes)")
    add_bool(model, "--local_files_only", False, "never download the base model from the hub")

    train = parser.add_argument_group("training")
    add(train, "--learning_rate", type=float, default=1e-3, help="peak learning rate")
    add(train, "--warmup_steps", type=int, default=50, help="linear warm-up steps")
    add(train, "--num_train_epochs", type=float, default=3.0, help="epochs over the train data")
    add(
        train,
        "--max_steps",
        type=int,
        default=-1,
        help="stop after this many optimizer steps (overrides epochs; needed for shards)",
    )
    add(train, "--per_device_train_batch_size", type=int, default=8, help="train batch per device")
    add(train, "--per_device_eval_batch_size", type=int, default=8, help="eval batch per device")
    add(
        train,
        "--gradient_accumulation_steps",
        type=int,
        default=1,
        help="batches accumulated per optimizer step",
    )
    add(train, "--logging_steps", type=int, default=100, help="log loss every N steps")
    add(train, "--eval_steps", type=int, default=1000, help="eval loss every N steps")
    add(
        train,
        "--save_steps",
        type=int,
        default=1000,
        help="save a checkpoint every N steps (a multiple of --eval_steps)",
    )
    add(
        train,
        "--save_total_limit",
        type=int,
        default=10,
        help="keep at most N step checkpoints (the best is always kept)",
    )
    add(train, "--num_workers", type=int, default=2, help="DataLoader worker processes")
    add_bool(train, "--fp16", None, "float16 mixed precision (default: on when a CUDA GPU exists)")
    add_bool(train, "--bf16", False, "bfloat16 mixed precision (GPU or a CPU that supports it)")
    add_bool(train, "--use_compile", False, "torch.compile the model")
    add_bool(train, "--gradient_checkpointing", False, "trade compute for memory")
    add(
        train,
        "--resume_from_checkpoint",
        default=None,
        help="checkpoint-N folder to resume from (optimizer and step restored)",
    )
    add(train, "--seed", type=int, default=42, help="random seed (data order, augmentation)")
    add_bool(
        train,
        "--push_to_hub",
        False,
        "upload the final adapter to the Hugging Face Hub (needs network and a token; "
        "not available on offline machines)",
    )
    add(train, "--hub_model_id", default=None, help="hub repo id for --push_to_hub")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.train.config import FinetuneConfig
    from whisper_tune.train.trainer import finetune

    result = finetune(FinetuneConfig.from_namespace(args))
    if result.first_loss is not None:
        print(
            f"loss {result.first_loss:.4f} → {result.last_loss:.4f} in {result.steps} steps "
            f"({result.train_seconds:.1f} s)"
        )
    if result.best_eval_loss is not None:
        print(f"best eval loss {result.best_eval_loss:.4f}")
    if result.skipped_audio:
        print(f"skipped {result.skipped_audio} unreadable audio files")
    print(f"final checkpoint: {result.final_checkpoint}")
    print(f"best checkpoint:  {result.best_checkpoint}")
    return 0
