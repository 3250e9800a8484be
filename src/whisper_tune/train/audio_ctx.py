"""Audio-context fine-tuning (``finetune --dynamic_audio_ctx``, issue 24).

Whisper pads every clip to a 30 s window; a model taught to read a window cut to the clip's
own length (:class:`whisper_tune.audio_context.ContextRule`, as inference cuts it) encodes short
clips several times faster. Each training batch runs:

- the teacher on the full 30 s windows: by default (``--audio_ctx_teacher self``) the adapted
  model itself, trained on the labels as an ordinary fine-tune and detached as the teacher;
  with ``base`` the base model (adapter disabled, no gradient);
- the adapted model with its encoder on each clip's own frames (clips grouped by context
  length, each group one encoder pass): the student.

The loss is ``audio_ctx_weight × KL(teacher || student)`` over the label positions, plus the
student's cross-entropy on the labels (and the full pass's, with ``self``), so a domain
fine-tune and the context adaptation are one run
(:class:`whisper_tune.train.distill.DistillingTrainer` adds them up). A base-model teacher
pulls the short context back towards what the base model says, domain words included; the
model's own full window asks it to agree with what the fine-tune learns. The logs show the KL
as ``ctx_kl``.
"""

from __future__ import annotations

import torch

from whisper_tune.audio_context import ContextRule
from whisper_tune.data.targets import IGNORE
from whisper_tune.models import encode_audio


def truncated_logits(model, inputs: dict, frames: torch.Tensor, rule: ContextRule) -> torch.Tensor:
    """Decoder logits of ``model`` (a Whisper, adapters active) with each clip's encoder input
    cut to ``rule.frames`` of its ``frames``; clips of one context length share a pass."""
    features, decoder_ids = inputs["input_features"], inputs["decoder_input_ids"]
    contexts = [rule.frames(int(n)) for n in frames]
    logits: list[torch.Tensor | None] = [None] * len(contexts)
    for context in sorted(set(contexts)):
        rows = [i for i, c in enumerate(contexts) if c == context]
        hidden = encode_audio(model.get_encoder(), features[rows, :, :context])
        out = model(encoder_outputs=hidden, decoder_input_ids=decoder_ids[rows])
        for row, row_logits in zip(rows, out.logits, strict=True):
            logits[row] = row_logits
    return torch.stack(logits)


def label_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the label positions (``IGNORE`` left out), as Whisper's loss."""
    return torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE
    )
