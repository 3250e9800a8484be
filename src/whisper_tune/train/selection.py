"""Which saved checkpoint is ``checkpoint-best``: the rule, apart from the training loop.

Each evaluation leaves a record (step, eval loss, domain metric, regression metric) in the
Trainer's ``log_history``. ``checkpoint-best`` is the lowest domain metric (or eval loss, with
``--metric_for_best_model loss``) among saved checkpoints whose regression metric is within
``--max_regression`` of the base model's; when none qualifies, the lowest overall, and the
choice says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class EvalRecord:
    """What one evaluation measured (None: not measured at that step)."""

    step: int
    loss: float | None = None
    metric: float | None = None
    regression: float | None = None


@dataclass(frozen=True)
class Choice:
    """The chosen record, the value it won on, and whether it met the regression bound."""

    record: EvalRecord
    value: float
    qualified: bool

    def describe(self, by: str, base_regression: float | None, max_regression: float) -> str:
        text = f"checkpoint-best: step {self.record.step}, {by} {self.value:.4f}"
        if base_regression is None:
            return text
        bound = f"base {base_regression:.4f} + {max_regression}"
        if self.qualified:
            return f"{text}, regression {self.record.regression:.4f} (within {bound})"
        return (
            f"{text}; no checkpoint kept the regression metric within {bound}, so checkpoint-best "
            f"is the best by {by} alone (regression {self.record.regression:.4f})"
        )


def records_from_log(log_history: Iterable[dict], metric: str) -> list[EvalRecord]:
    """One record per evaluated step, merging the loss entry and the metric entry."""
    steps: dict[int, dict] = {}
    for entry in log_history:
        values = steps.setdefault(entry.get("step", 0), {})
        for key, name in (
            ("eval_loss", "loss"),
            (f"eval_{metric}", "metric"),
            (f"eval_regression_{metric}", "regression"),
        ):
            if key in entry:
                values[name] = entry[key]
    return [EvalRecord(step, **values) for step, values in sorted(steps.items()) if values]


def choose_best(
    records: Iterable[EvalRecord],
    by: str,
    base_regression: float | None,
    max_regression: float,
    saved: Callable[[int], bool] = lambda step: True,
) -> Choice | None:
    """The record ``checkpoint-best`` should hold, by ``by`` ("metric" or "loss"), among the
    steps ``saved`` says have a checkpoint; the earliest wins a tie. None without records."""
    candidates = [r for r in records if saved(r.step) and getattr(r, by) is not None]
    if not candidates:
        return None

    def within(record: EvalRecord) -> bool:
        return base_regression is None or (
            record.regression is not None and record.regression <= base_regression + max_regression
        )

    qualified = [r for r in candidates if within(r)]
    best = min(qualified or candidates, key=lambda r: getattr(r, by))
    return Choice(best, getattr(best, by), bool(qualified))
