"""Learning without forgetting: a KL term towards the frozen base model (``--kl_weight``).

For each training batch, one extra forward pass without gradients and with the adapter
disabled (PEFT's ``disable_adapter()``) gives the base model's token distribution on the same
inputs: log-mel features, or the frozen encoder layers' cached states, which the patched
encoder takes with or without the adapter. The loss adds ``kl_weight * KL(base || adapted)``,
averaged over the label positions (prompt and padding positions, labelled ``IGNORE``, are left
out). Every sample of the batch counts: domain, no-speech and replay samples alike.
"""

from __future__ import annotations

import torch

from whisper_tune.data.targets import IGNORE
from whisper_tune.train.metric_eval import SelectingTrainer


def reference_logits(model, inputs: dict) -> torch.Tensor:
    """The base model's logits on ``inputs``: ``model`` (a PeftModel) with its adapter off."""
    with torch.no_grad(), model.disable_adapter():
        return model(**{k: v for k, v in inputs.items() if k != "labels"}).logits


def kl_to_reference(
    reference: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean over label positions of KL(softmax(reference) || softmax(logits))."""
    scored = labels != IGNORE
    base = torch.log_softmax(reference[scored].float(), dim=-1)
    adapted = torch.log_softmax(logits[scored].float(), dim=-1)
    return torch.nn.functional.kl_div(adapted, base, log_target=True, reduction="batchmean")


class DistillingTrainer(SelectingTrainer):
    """A :class:`SelectingTrainer` whose training loss adds ``kl_weight`` × the KL term
    (evaluation losses stay plain cross-entropy); the logs show the KL as ``kl``."""

    def __init__(self, *args, kl_weight: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kl_weight = kl_weight
        self._kl: list[torch.Tensor] = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.kl_weight or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        peft_model = self.accelerator.unwrap_model(model)
        kl = kl_to_reference(reference_logits(peft_model, inputs), outputs.logits, inputs["labels"])
        self._kl.append(kl.detach())
        loss = loss + self.kl_weight * kl
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._kl and "loss" in logs:
            logs["kl"] = round(float(torch.stack(self._kl).mean()), 6)
            self._kl.clear()
        super().log(logs, start_time)
