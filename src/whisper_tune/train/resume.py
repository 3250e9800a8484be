"""Check a resumed run against the ``run_config.json`` saved with its checkpoint.

As torchtune's ``_update_recipe_state`` does: what shapes the adapter or the training targets
must match the checkpoint (the restored weights and optimizer would not fit, or would learn
something else); schedule settings may change, with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from whisper_tune.errors import WhisperTuneError
from whisper_tune.languages import language_code
from whisper_tune.train.config import RUN_CONFIG, FinetuneConfig, read_run_config

log = logging.getLogger(__name__)

MUST_MATCH = (
    "use_adalora",
    "lora_r",
    "lora_alpha",
    "target_modules",
    "adalora_init_r",
    "adalora_target_r",
    "freeze_encoder",
    "freeze_encoder_layers",
    "timestamps",
    "language",
    "task",
    "dynamic_audio_ctx",
    "audio_ctx_teacher",
)
MAY_DIFFER = (
    "learning_rate",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "world_size",
)


def check_resume(config: FinetuneConfig, resolved_base_model: str, world_size: int) -> None:
    """Compare ``config`` with the checkpoint's saved run config.

    Raises :class:`WhisperTuneError` when the checkpoint folder is missing or a setting in
    ``MUST_MATCH`` (or the base model) differs; logs a warning for each ``MAY_DIFFER`` change.
    """
    checkpoint = Path(config.resume_from_checkpoint)
    if not checkpoint.is_dir():
        where = (
            " on this node (every node reads it: give the nodes shared storage, or train "
            "with --save_on_each_node so each node writes its own copy)"
            if world_size > 1
            else ""
        )
        raise WhisperTuneError(
            f"--resume_from_checkpoint {checkpoint}: no such checkpoint folder{where}"
        )
    saved = read_run_config(checkpoint)
    if not saved:
        log.warning("%s has no %s; resuming without checking the settings", checkpoint, RUN_CONFIG)
        return
    current = asdict(config) | {"world_size": world_size}
    differ = [name for name in MUST_MATCH if _differs(name, saved, current)]
    same_model = saved.get("base_model") == config.base_model or (
        saved.get("resolved_base_model") == resolved_base_model
    )
    if not same_model:
        differ.insert(0, "base_model")
    if differ:
        changes = "; ".join(
            f"--{name} {current[name]!r} (checkpoint: {saved.get(name)!r})" for name in differ
        )
        raise WhisperTuneError(
            f"{checkpoint / RUN_CONFIG}: cannot resume with other model, adapter or target "
            "settings: "
            f"{changes}. Use the checkpoint's settings or start a new run"
        )
    for name in MAY_DIFFER:
        if _differs(name, saved, current):
            log.warning(
                "resuming %s with %s = %r (checkpoint: %r); the optimizer and learning-rate "
                "schedule restored from the checkpoint continue as saved",
                checkpoint,
                name,
                current[name],
                saved[name],
            )


def _differs(name: str, saved: dict, current: dict) -> bool:
    if name not in saved:
        return False
    old, new = saved[name], current[name]
    if name == "language":
        old, new = language_code(old), language_code(new)
    elif isinstance(new, tuple):
        new = list(new)
    return old != new
