"""Trainer callbacks for cross-cutting work: AdaLoRA's budget step, run configs, progress."""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from whisper_tune.train.config import FinetuneConfig


class AdaLoraBudgetCallback(TrainerCallback):
    """Runs ``update_and_allocate`` after every optimizer step, before gradients are zeroed.

    The seed never called it, so its "AdaLoRA" trained as a plain LoRA.
    """

    def __init__(self) -> None:
        self.calls = 0

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        model.base_model.update_and_allocate(state.global_step)
        self.calls += 1


class RunConfigCallback(TrainerCallback):
    """Saves ``run_config.json`` into every checkpoint folder the Trainer writes."""

    def __init__(self, config: FinetuneConfig, facts: dict) -> None:
        self.config = config
        self.facts = facts

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                self.config.save(folder, global_step=state.global_step, **self.facts)
