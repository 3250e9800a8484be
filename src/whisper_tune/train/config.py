"""Everything a fine-tuning run uses, as one dataclass saved beside every checkpoint."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from whisper_tune.data.hf_datasets import data_source, dataset_option
from whisper_tune.eval_config import scoring_option
from whisper_tune.options import TASKS, option

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
RUN_CONFIG = "run_config.json"
# argument groups of ``whisper-tune finetune --help``
DATA, MODEL, TRAINING = "data", "model and adapter", "training"
SELECTION = "checkpoint selection"
KEEP = "keeping what the base model knows"
CONTEXT = "audio context (faster short clips)"
DEFAULT_REPLAY_RATIO = 0.25
TRACKERS = ("tensorboard", "mlflow", "wandb", "none")  # --report_to: transformers integrations


@dataclass
class FinetuneConfig:
    """Options of ``whisper-tune finetune`` (the seed's finetune.py names and defaults)."""

    train_data: str | None = option(
        None,
        help="training data: a manifest (JSONL, one utterance per line), a sharded corpus "
        "folder, or a Hugging Face datasets source (save_to_disk folder, .parquet/.arrow "
        "files, audiofolder, hf://datasets/NAME); required unless --dataset_name is given",
        group=DATA,
    )
    base_model: str = option(
        "tiny.en",
        help="bundled name (tiny.en, base), local Hugging Face Whisper dir, or hub id "
        "such as openai/whisper-tiny",
        group=MODEL,
    )
    test_data: str | None = option(
        None,
        help="evaluation manifest or datasets source (as --train_data); enables eval loss "
        "and --metric every --eval_steps and checkpoint-best",
        group=DATA,
    )
    regression_data: str | None = option(
        None,
        help="general speech the model must not forget (manifest): scored with --metric at "
        "every eval and once on the base model; checkpoint-best must stay within "
        "--max_regression of the base model's score",
        group=SELECTION,
    )
    metric: str | None = option(
        None,
        help="error rate computed by greedy generation on --test_data every --eval_steps "
        "(default: cer for zh, ja, ko, th ..., wer otherwise)",
        group=SELECTION,
        choices=("wer", "cer"),
    )
    metric_for_best_model: str = option(
        "metric",
        help="what checkpoint-best minimises: metric (--metric by generation) or loss "
        "(eval loss, the old rule; generation only runs for --regression_data)",
        group=SELECTION,
        choices=("metric", "loss"),
    )
    eval_max_samples: int = option(
        64,
        help="generate on at most the first N utterances of --test_data and --regression_data "
        "at each eval (the eval loss uses all of --test_data)",
        group=SELECTION,
    )
    max_regression: float = option(
        0.01,
        help="how much worse (absolute, e.g. 0.01 = 1 point) than the base model a "
        "checkpoint-best may score on --regression_data",
        group=SELECTION,
    )
    remove_pun: bool = scoring_option("remove_pun", SELECTION)
    to_simple: bool = scoring_option("to_simple", SELECTION)
    english_normalizer: bool = scoring_option("english_normalizer", SELECTION)
    output_dir: str = option("output/", help="where checkpoints are written", group=MODEL)
    language: str | None = option(
        None,
        help="language of the data (code or name: zh, Chinese, en); a per-line 'language' wins. "
        "Required for multilingual models unless every line has one",
        group=DATA,
    )
    task: str = option("transcribe", help="decoder task token", group=DATA, choices=TASKS)
    timestamps: bool = option(
        False,
        help="train timestamp prediction too: lines with 'sentences' use their start/end, "
        "others the whole clip; --timestamp_ratio of samples get timestamped targets",
        group=DATA,
    )
    timestamp_ratio: float = option(
        0.5, help="share of samples with timestamped targets when --timestamps is on", group=DATA
    )
    prompt_ratio: float = option(
        0.2,
        help="share of samples trained with a previous-text prompt (<|startofprev|> + the "
        "line's 'prompt', else the previous segment of the same recording, else another "
        "line's sentence; not in the loss), so --initial_prompt and --hotwords keep steering "
        "the model. 0.2: most decoding runs without a prompt, so most samples train that",
        group=KEEP,
    )
    language_id_loss: str = option(
        "auto",
        help="train the language token after <|startoftranscript|>, the one language "
        "detection reads: 'auto' only when the training data (with --replay_data) hold more "
        "than one language, since a one-language set can only teach the model to hear that "
        "language in everything; 'on'; 'off'",
        group=KEEP,
        choices=("auto", "on", "off"),
    )
    kl_weight: float = option(
        0.0,
        help="weight of KL(base || adapted) on the label tokens: one extra no-grad forward with "
        "the adapter disabled per batch (no backward pass) keeps the output distribution "
        "close to the base model's (off by default until measured)",
        group=KEEP,
    )
    dynamic_audio_ctx: bool = option(
        False,
        help="teach the model short clips encoded at their own length (transcribe --audio_ctx "
        "auto: 2x+ faster on short audio): the loss adds --audio_ctx_weight x KL from a full "
        "30 s window (--audio_ctx_teacher) to the adapted model on the clip's frames, rounded "
        "up to whole seconds (2 s floor); labels keep their cross-entropy, so this "
        "combines with a domain fine-tune. Marks the checkpoint (merge, convert and "
        "export-ggml keep the mark); no encoder cache",
        group=CONTEXT,
    )
    audio_ctx_weight: float = option(
        1.0,
        help="--dynamic_audio_ctx: weight of the KL to the full-window teacher",
        group=CONTEXT,
    )
    audio_ctx_teacher: str = option(
        "self",
        help="--dynamic_audio_ctx: whose full 30 s window the short-context pass is pulled "
        "towards: 'self', the model being trained (its full windows also learn the "
        "transcripts, as a plain fine-tune), so the domain it learns is not pulled back; "
        "'base', the model it started from (adapter off, no gradient)",
        group=CONTEXT,
        choices=("self", "base"),
    )
    replay_data: str | None = option(
        None,
        help="manifest of general speech mixed into training (--replay_ratio) so the model "
        "keeps what it knew; replay samples get --prompt_ratio and --kl_weight too",
        group=KEEP,
    )
    replay_ratio: float | None = option(
        None,
        help="share of training samples from --replay_data, in [0, 1) (default "
        f"{DEFAULT_REPLAY_RATIO} with --replay_data); added to the domain samples, which all stay",
        group=KEEP,
    )
    dataset_name: str | None = dataset_option("dataset_name", DATA)
    dataset_config: str | None = dataset_option("dataset_config", DATA)
    split: str | None = dataset_option("split", DATA)
    audio_column: str | None = dataset_option("audio_column", DATA)
    text_column: str | None = dataset_option("text_column", DATA)
    streaming: bool = dataset_option("streaming", DATA)
    min_audio_len: float = option(0.5, help="skip clips shorter (seconds)", group=DATA)
    max_audio_len: float = option(30.0, help="skip clips longer (seconds)", group=DATA)
    skip_bad: bool = option(
        False,
        help="skip and count bad manifest lines and unreadable audio instead of stopping",
        group=DATA,
    )
    augment_config_path: str | None = option(
        None,
        help="JSON list of augmentations ({type, params, prob}: speed, shift, volume, resample, "
        "noise) applied on the fly",
        group=DATA,
    )
    use_adalora: bool = option(
        False, help="AdaLoRA instead of LoRA (rank budget reallocated every step)", group=MODEL
    )
    lora_r: int = option(32, help="LoRA rank", group=MODEL)
    lora_alpha: int = option(64, help="LoRA scaling alpha", group=MODEL)
    lora_dropout: float = option(0.05, help="LoRA dropout", group=MODEL)
    target_modules: tuple[str, ...] = option(
        DEFAULT_TARGET_MODULES, help="module names that get adapters", group=MODEL
    )
    adalora_init_r: int = option(12, help="AdaLoRA initial rank", group=MODEL)
    adalora_target_r: int = option(4, help="AdaLoRA average target rank", group=MODEL)
    learning_rate: float = option(1e-3, help="peak learning rate", group=TRAINING)
    warmup_ratio: float = option(
        0.1,
        help="share of the optimizer steps spent in linear warm-up: 0.1 keeps a short run on a "
        "small domain set (100 clips, a few dozen steps) mostly at the working learning rate "
        "and lets it decay before the final checkpoint, where the seed's fixed 50 steps made "
        "the whole run warm-up",
        group=TRAINING,
    )
    warmup_steps: int | None = option(
        None, help="linear warm-up steps; given, it wins over --warmup_ratio", group=TRAINING
    )
    num_train_epochs: float = option(3.0, help="epochs over the train data", group=TRAINING)
    max_steps: int = option(
        -1,
        help="stop after this many optimizer steps (overrides epochs; needed for shards)",
        group=TRAINING,
    )
    per_device_train_batch_size: int = option(8, help="train batch per device", group=TRAINING)
    per_device_eval_batch_size: int = option(8, help="eval batch per device", group=TRAINING)
    gradient_accumulation_steps: int = option(
        1, help="batches accumulated per optimizer step", group=TRAINING
    )
    logging_steps: int = option(100, help="log loss every N steps", group=TRAINING)
    eval_steps: int = option(1000, help="eval loss every N steps", group=TRAINING)
    save_steps: int = option(
        1000, help="save a checkpoint every N steps (a multiple of --eval_steps)", group=TRAINING
    )
    save_total_limit: int = option(
        10, help="keep at most N step checkpoints (the best is always kept)", group=TRAINING
    )
    save_on_each_node: bool = option(
        False,
        help="multi-node training on machines that share no storage: the first process of "
        "every node writes the checkpoints to its own --output_dir (so each node can resume); "
        "leave it off when the nodes share a filesystem (they would write the same folders)",
        group=TRAINING,
    )
    num_workers: int = option(2, help="DataLoader worker processes", group=TRAINING)
    fp16: bool | None = option(
        None, help="float16 mixed precision (default: on when a CUDA GPU exists)", group=TRAINING
    )
    bf16: bool = option(
        False, help="bfloat16 mixed precision (GPU or a CPU that supports it)", group=TRAINING
    )
    use_8bit: bool = option(
        False, help="load the base model in 8 bit (needs CUDA + bitsandbytes)", group=MODEL
    )
    use_compile: bool = option(False, help="torch.compile the model", group=TRAINING)
    gradient_checkpointing: bool = option(False, help="trade compute for memory", group=TRAINING)
    freeze_encoder: bool = option(
        False,
        help="adapters in the decoder only: the encoder is not trained, and each clip is "
        "encoded once and cached (several times faster on CPU)",
        group=MODEL,
    )
    freeze_encoder_layers: int | None = option(
        None,
        help="leave the bottom N encoder layers without adapters; their output is computed "
        "once per clip and cached, so training costs only the layers above and still adapts "
        "to new acoustics (default: the bottom half, 2 of tiny's 4 and 3 of base's 6 layers: "
        "measured 1.4x the seed recipe's samples/s at a lower held-out WER; "
        "0: adapters in every encoder layer, the seed's full LoRA)",
        group=MODEL,
    )
    cache_encoder_outputs: bool = option(
        True,
        help="with frozen encoder layers, keep each clip's hidden state below the trained "
        "layers in memory across epochs "
        "(off automatically with augmentation, shards or a cache over --encoder_cache_gb)",
        group=MODEL,
    )
    encoder_cache_gb: float = option(
        4.0, help="memory budget for the encoder-output cache", group=MODEL
    )
    resume_from_checkpoint: str | None = option(
        None,
        help="checkpoint-N folder to resume from (optimizer and step restored)",
        group=TRAINING,
    )
    local_files_only: bool = option(
        False, help="never download the base model from the hub", group=MODEL
    )
    report_to: tuple[str, ...] = option(
        ("tensorboard",),
        help="where the loss and metrics are logged, one or more of: tensorboard "
        "(<output_dir>/<model>/runs/), mlflow (the store MLFLOW_TRACKING_URI names, by "
        "default sqlite:///mlflow.db in the working folder; experiment MLFLOW_EXPERIMENT_NAME; "
        "pip install "
        "'whisper-tune[track]'), wandb (pip install wandb; "
        "WANDB_MODE=offline for no network), none",
        group=TRAINING,
        choices=TRACKERS,
    )
    push_to_hub: bool = option(
        False,
        help="upload checkpoint-best (adapter, processor, run_config.json) with a model card "
        "to --hub_model_id once at the end (needs network and a token); to share a merged "
        "model with its CTranslate2/GGML variants and scores, use whisper-tune push",
        group=TRAINING,
    )
    hub_model_id: str | None = option(None, help="hub repo id for --push_to_hub", group=TRAINING)
    shuffle_buffer: int = option(
        1000, help="shuffle buffer size when streaming a sharded corpus", group=DATA
    )
    seed: int = option(42, help="random seed (data order, augmentation)", group=TRAINING)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.train_data = data_source(self.train_data, self.dataset_name)

    def frozen_encoder_layers(self, num_layers: int) -> int:
        """How many bottom encoder layers get no adapters: all with ``freeze_encoder``, the
        bottom half unless ``freeze_encoder_layers`` says otherwise."""
        if self.freeze_encoder:
            return num_layers
        if self.freeze_encoder_layers is None:
            return num_layers // 2
        return min(self.freeze_encoder_layers, num_layers)

    def warmup_for(self, total_steps: int) -> int:
        """Warm-up steps of a ``total_steps`` run: ``warmup_steps`` when given, else
        ``warmup_ratio`` of the run (rounded up, as transformers does); never the whole run."""
        steps = (
            self.warmup_steps
            if self.warmup_steps is not None
            else math.ceil(self.warmup_ratio * total_steps)
        )
        return min(steps, max(0, total_steps - 1))

    def replay_share(self) -> float:
        """``replay_ratio``, or its default when only ``replay_data`` is given."""
        if self.replay_ratio is not None:
            return self.replay_ratio
        return DEFAULT_REPLAY_RATIO if self.replay_data else 0.0

    def save(self, directory: str | Path, **facts) -> None:
        """Write ``run_config.json`` (the config plus run facts such as the resolved model)."""
        record = asdict(self) | facts
        path = Path(directory) / RUN_CONFIG
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)


def read_run_config(directory: str | Path) -> dict:
    """The ``run_config.json`` saved with a checkpoint, or {} if there is none."""
    path = Path(directory) / RUN_CONFIG
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))
