"""Everything a fine-tuning run uses, as one dataclass saved beside every checkpoint."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
RUN_CONFIG = "run_config.json"


@dataclass
class FinetuneConfig:
    """Options of ``whisper-tune finetune`` (the seed's finetune.py names and defaults)."""

    train_data: str
    base_model: str = "tiny.en"
    test_data: str | None = None
    output_dir: str = "output/"
    language: str | None = None
    task: str = "transcribe"
    timestamps: bool = False
    timestamp_ratio: float = 0.5
    min_audio_len: float = 0.5
    max_audio_len: float = 30.0
    skip_bad: bool = False
    augment_config_path: str | None = None
    use_adalora: bool = False
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES
    adalora_init_r: int = 12
    adalora_target_r: int = 4
    learning_rate: float = 1e-3
    warmup_steps: int = 50
    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    logging_steps: int = 100
    eval_steps: int = 1000
    save_steps: int = 1000
    save_total_limit: int = 10
    num_workers: int = 2
    fp16: bool | None = None  # None: on when a CUDA GPU is present
    bf16: bool = False
    use_8bit: bool = False
    use_compile: bool = False
    gradient_checkpointing: bool = False
    freeze_encoder: bool = False  # all encoder layers; or only the bottom ones:
    freeze_encoder_layers: int = 0
    cache_encoder_outputs: bool = True
    encoder_cache_gb: float = 4.0
    resume_from_checkpoint: str | None = None
    local_files_only: bool = False
    push_to_hub: bool = False
    hub_model_id: str | None = None
    shuffle_buffer: int = 1000
    seed: int = 42
    extra: dict = field(default_factory=dict)

    def frozen_encoder_layers(self, num_layers: int) -> int:
        """How many bottom encoder layers get no adapters (all with ``freeze_encoder``)."""
        return num_layers if self.freeze_encoder else min(self.freeze_encoder_layers, num_layers)

    def save(self, directory: str | Path, **facts) -> None:
        """Write ``run_config.json`` (the config plus run facts such as the resolved model)."""
        record = asdict(self) | facts
        path = Path(directory) / RUN_CONFIG
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def from_namespace(cls, namespace) -> FinetuneConfig:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in vars(namespace).items() if k in names}
        if "target_modules" in values and isinstance(values["target_modules"], list):
            values["target_modules"] = tuple(values["target_modules"])
        return cls(**values)


def read_run_config(directory: str | Path) -> dict:
    """The ``run_config.json`` saved with a checkpoint, or {} if there is none."""
    path = Path(directory) / RUN_CONFIG
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))
