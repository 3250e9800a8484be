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

from whisper_tune.audio_context import ContextRule
from whisper_tune.data.dataset import FRAMES_KEY, ShardStream
from whisper_tune.data.targets import IGNORE
from whisper_tune.train.audio_ctx import label_cross_entropy, truncated_logits
from whisper_tune.train.metric_eval import SelectingTrainer


def reference_logits(model, inputs: dict) -> torch.Tensor:
    """The base model's logits on ``inputs``: ``model`` (a PeftModel) with its adapter off."""
    with torch.no_grad(), model.disable_adapter():
        return model(**_without_labels(inputs)).logits


def _without_labels(inputs: dict) -> dict:
    return {k: v for k, v in inputs.items() if k != "labels"}


def kl_to_reference(
    reference: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean over label positions of KL(softmax(reference) || softmax(logits))."""
    scored = labels != IGNORE
    base = torch.log_softmax(reference[scored].float(), dim=-1)
    adapted = torch.log_softmax(logits[scored].float(), dim=-1)
    return torch.nn.functional.kl_div(adapted, base, log_target=True, reduction="batchmean")


def average_gradients(parameters) -> None:
    """Replace each gradient by its mean over the processes (what DDP does for a forward that
    goes through its wrapper; a loss computed on the unwrapped model leaves that to us)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    flat = torch.cat([grad.reshape(-1) for grad in grads])
    torch.distributed.all_reduce(flat)
    flat /= torch.distributed.get_world_size()
    for grad, mean in zip(grads, flat.split([grad.numel() for grad in grads]), strict=True):
        grad.copy_(mean.view_as(grad))


class DistillingTrainer(SelectingTrainer):
    """A :class:`SelectingTrainer` whose training loss adds ``kl_weight`` × the KL term
    (evaluation losses stay plain cross-entropy); the logs show the KL as ``kl``.

    With ``audio_context`` (``--dynamic_audio_ctx``) the training loss is instead that of the
    truncated-context pass (:mod:`whisper_tune.train.audio_ctx`), its KL logged as ``ctx_kl``;
    batches then carry each clip's audio frames, which evaluation (at 30 s) drops.

    The audio-context pass runs the encoder by hand on the unwrapped model, so under DDP its
    gradients are averaged over the processes here, once per optimizer step.
    A sharded corpus is split between the processes by the stream itself (each reads its own
    shards), so accelerate must not split it again.
    """

    def __init__(
        self,
        *args,
        kl_weight: float = 0.0,
        audio_context: ContextRule | None = None,
        audio_ctx_weight: float = 1.0,
        audio_ctx_teacher: str = "self",
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.kl_weight = kl_weight
        self.audio_context = audio_context
        self.audio_ctx_weight = audio_ctx_weight
        self.audio_ctx_teacher = audio_ctx_teacher
        if audio_context is not None:
            self.loss_is_scaled_for_ga = False  # a mean per batch, as the KL term is
        self._logged: dict[str, list[torch.Tensor]] = {}

    def get_train_dataloader(self):
        from accelerate.data_loader import IterableDatasetShard

        loader = super().get_train_dataloader()
        shard = loader.dataset
        if isinstance(self.train_dataset, ShardStream) and isinstance(shard, IterableDatasetShard):
            # accelerate's wrapper would keep every n-th batch of this process' stream, which
            # already is its share: make it pass everything through, as transformers does for
            # its rank-aware BatchRebalanceSampler
            shard.num_processes, shard.process_index = 1, 0
        return loader

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        distributed = self.audio_context is not None and self.args.world_size > 1
        if distributed and self.accelerator.sync_gradients:  # the step's last micro-batch
            average_gradients(model.parameters())
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        frames = inputs.pop(FRAMES_KEY, None)
        if self.audio_context is not None and model.training:
            return self._context_loss(model, inputs, frames, return_outputs)
        if not self.kl_weight or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        peft_model = self.accelerator.unwrap_model(model)
        kl = kl_to_reference(reference_logits(peft_model, inputs), outputs.logits, inputs["labels"])
        self._logged.setdefault("kl", []).append(kl.detach())
        loss = loss + self.kl_weight * kl
        return (loss, outputs) if return_outputs else loss

    def _context_loss(self, model, inputs, frames, return_outputs: bool):
        """Cross-entropy of the truncated-context pass + ``audio_ctx_weight`` × its KL to a
        full 30 s pass (see :mod:`whisper_tune.train.audio_ctx`): with ``audio_ctx_teacher``
        "self" the adapted model's own, trained on the labels too and detached as the
        teacher; with "base" the base model's, without gradient."""
        peft_model = self.accelerator.unwrap_model(model)
        labels = inputs["labels"]
        student = truncated_logits(peft_model.get_base_model(), inputs, frames, self.audio_context)
        loss = label_cross_entropy(student, labels)
        if self.audio_ctx_teacher == "self":
            full = peft_model(**_without_labels(inputs)).logits
            loss = loss + label_cross_entropy(full, labels)
            teacher = full.detach()
        else:
            teacher = reference_logits(peft_model, inputs)
        kl = kl_to_reference(teacher, student, labels)
        self._logged.setdefault("ctx_kl", []).append(kl.detach())
        loss = loss + self.audio_ctx_weight * kl
        return (loss, None) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            for name, values in self._logged.items():
                if values:
                    logs[name] = round(float(torch.stack(values).mean()), 6)
                    values.clear()
        super().log(logs, start_time)
