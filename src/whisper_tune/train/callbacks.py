"""Trainer callbacks for cross-cutting work: AdaLoRA's budget step, run configs, progress."""

from __future__ import annotations

import datetime
import time
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
    """Saves ``run_config.json`` into every checkpoint folder the Trainer writes (on every
    node with ``--save_on_each_node``)."""

    def __init__(self, config: FinetuneConfig, facts: dict) -> None:
        self.config = config
        self.facts = facts

    def on_save(self, args, state, control, **kwargs):
        if args.should_save:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                self.config.save(folder, global_step=state.global_step, **self.facts)


PROGRESS_SECONDS = 30.0  # a plain progress line at most this often (and at the first/last step)


class PlainProgress(TrainerCallback):
    """Progress as plain lines for logs and CI (no terminal, so no progress bar): step,
    loss, samples/s and ETA at the first step, every ``PROGRESS_SECONDS`` and the last step;
    each evaluation's results as they come. A step that logs its loss prints after the log."""

    def __init__(self, every: float = PROGRESS_SECONDS) -> None:
        self.every = every
        self.started = 0.0
        self.last_line = 0.0
        self.loss: float | None = None
        self.due = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self.last_line = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.monotonic()
        step = state.global_step
        if step == 1 or step == state.max_steps or now - self.last_line >= self.every:
            self.last_line = now
            self.due = True
            if not control.should_log:  # else on_log prints it, with this step's loss
                self._line(args, state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self.loss = logs["loss"]
            self._line(args, state)
        scores = {
            key[5:]: value
            for key, value in logs.items()
            if key.startswith("eval_") and not key.endswith(("runtime", "per_second"))
        }
        if scores and state.is_world_process_zero:
            shown = ", ".join(f"{key} {value:.4f}" for key, value in scores.items())
            print(f"eval at step {state.global_step}: {shown}", flush=True)

    def _line(self, args, state) -> None:
        if not self.due or not state.is_world_process_zero:
            return
        self.due = False
        step, total = state.global_step, state.max_steps
        elapsed = time.monotonic() - self.started
        per_step = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
        rate = step * per_step / elapsed if elapsed else 0.0
        eta = datetime.timedelta(seconds=round(elapsed / step * (total - step)))
        loss = f"{self.loss:.4f}" if self.loss is not None else "-"
        print(
            f"step {step}/{total} ({100 * step / max(total, 1):.0f}%), loss {loss}, "
            f"{rate:.2f} samples/s, ETA {eta}",
            flush=True,
        )


def tracking_locations(trainer) -> dict[str, str]:
    """Where each tracker of a finished run wrote: TensorBoard's folder, MLflow's run."""
    found = {}
    for callback in trainer.callback_handler.callbacks:
        name = type(callback).__name__
        if name == "TensorBoardCallback" and getattr(callback, "logging_dir", None):
            found["tensorboard"] = str(callback.logging_dir)
        elif name == "MLflowCallback" and getattr(callback, "_ml_flow", None) is not None:
            mlflow = callback._ml_flow
            run = mlflow.last_active_run()
            where = mlflow.get_tracking_uri()
            found["mlflow"] = f"{where} (run {run.info.run_id})" if run else where
        elif name == "WandbCallback":
            found["wandb"] = "the wandb run (wandb's own summary names it)"
    return found
