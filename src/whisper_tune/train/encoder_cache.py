"""Run the frozen part of the encoder once per clip instead of once per clip per epoch.

With ``--freeze_encoder`` (all layers) or ``--freeze_encoder_layers N`` (the bottom N), the
frozen layers carry no adapters, so a clip's hidden state after them never changes during
training. When the training set fits the memory budget (and no augmentation changes the audio
between epochs), each clip goes through the convolutions and the frozen layers once, up
front; training then feeds the stored states to the remaining layers. On 30 s windows the
encoder is most of Whisper's compute, so this is where CPU fine-tuning gets its speed.
"""

from __future__ import annotations

import types

import torch
from tqdm import tqdm
from transformers.modeling_outputs import BaseModelOutput


def cache_size_bytes(num_samples: int, model_config) -> int:
    """Memory the cache needs: 1500 frames × d_model values per clip, stored as float16."""
    return num_samples * model_config.max_source_positions * model_config.d_model * 2


def encode_frozen_part(encoder, features: torch.Tensor, frozen_layers: int) -> torch.Tensor:
    """Convolutions, positions and the bottom ``frozen_layers`` layers (eval mode, no grad)."""
    hidden = torch.nn.functional.gelu(encoder.conv1(features))
    hidden = torch.nn.functional.gelu(encoder.conv2(hidden)).permute(0, 2, 1)
    hidden = hidden + encoder.embed_positions.weight[: hidden.shape[1]]
    for layer in encoder.layers[:frozen_layers]:
        hidden = layer(hidden, None)
    return hidden


def run_from_cached_states(encoder, frozen_layers: int) -> None:
    """Make ``encoder`` take cached hidden states as its input and run only the top layers."""

    def forward(self, input_features, attention_mask=None, **kwargs):
        hidden = input_features
        for layer in self.layers[frozen_layers:]:
            hidden = layer(hidden, None)
        return BaseModelOutput(last_hidden_state=self.layer_norm(hidden))

    encoder.forward = types.MethodType(forward, encoder)


class EncoderStateCache(torch.utils.data.Dataset):
    """A dataset whose ``input_features`` are replaced by the frozen layers' output."""

    def __init__(
        self, dataset, encoder, frozen_layers: int, batch_size: int = 8, num_workers: int = 0
    ) -> None:
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=list
        )
        self.utterances = getattr(dataset, "utterances", [])  # manifest lines, in order
        parameter = next(encoder.parameters())
        was_training = encoder.training
        encoder.eval()
        self.samples: list[dict] = []
        with torch.inference_mode():
            for batch in tqdm(loader, desc="encoding clips once", unit="batch"):
                good = [s for s in batch if "bad" not in s]
                if good:
                    features = torch.stack([torch.as_tensor(s["input_features"]) for s in good])
                    states = iter(
                        encode_frozen_part(
                            encoder, features.to(parameter.device, parameter.dtype), frozen_layers
                        )
                        .to(torch.float16)
                        .cpu()
                    )
                for sample in batch:
                    if "bad" not in sample:
                        sample = dict(sample, input_features=next(states).clone())
                    self.samples.append(sample)
        encoder.train(was_training)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        return self.samples[index]
