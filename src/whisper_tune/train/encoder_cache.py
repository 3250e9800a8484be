"""Run a frozen encoder once per clip instead of once per clip per epoch.

With ``--freeze_encoder`` the adapters live in the decoder only, so a clip's encoder output
never changes during training. When the training set fits the memory budget (and no
augmentation changes the audio between epochs), every clip is encoded once up front and the
decoder trains on the stored states: the encoder — most of Whisper's compute on 30 s
windows — then costs one forward pass per clip in total.
"""

from __future__ import annotations

import torch
from tqdm import tqdm


def cache_size_bytes(num_samples: int, model_config) -> int:
    """Memory the cache would need: 1500 frames × d_model floats per clip (stored as fp16)."""
    return num_samples * model_config.max_source_positions * model_config.d_model * 2


class EncoderOutputCache(torch.utils.data.Dataset):
    """A dataset whose samples carry ``encoder_hidden`` in place of ``input_features``."""

    def __init__(self, dataset, encoder, batch_size: int = 8, num_workers: int = 0) -> None:
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=list
        )
        self.samples: list[dict] = []
        parameter = next(encoder.parameters())
        with torch.inference_mode():
            for batch in tqdm(loader, desc="encoding clips once", unit="batch"):
                good = [s for s in batch if "bad" not in s]
                if good:
                    features = torch.stack([torch.as_tensor(s["input_features"]) for s in good])
                    hidden = (
                        encoder(features.to(parameter.device, parameter.dtype))
                        .last_hidden_state.to(torch.float16)
                        .cpu()
                    )
                    states = iter(hidden)
                for sample in batch:
                    if "bad" in sample:
                        self.samples.append(sample)
                        continue
                    kept = {k: v for k, v in sample.items() if k != "input_features"}
                    kept["encoder_hidden"] = next(states).clone()
                    self.samples.append(kept)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        return self.samples[index]
