"""PEFT adapters for Whisper: LoRA and AdaLoRA configs, applied to a loaded model."""

from __future__ import annotations

from whisper_tune.train.config import FinetuneConfig


def adalora_schedule(total_steps: int) -> tuple[int, int, int]:
    """(tinit, tfinal, deltaT): the seed's 200/1000/10, scaled down for short runs."""
    tinit = min(200, max(1, total_steps // 10))
    tfinal = min(1000, max(1, total_steps * 3 // 10))
    delta_t = max(1, min(10, (total_steps - tinit - tfinal) // 5))
    return tinit, tfinal, delta_t


def decoder_only_targets(modules: tuple[str, ...]) -> str:
    """A PEFT regex for adapters in the decoder only, leaving the encoder as the base model's.

    Cross-attention keys/values are left out too: they see only the (frozen) encoder
    output, so without adapters they need no gradient over all 1500 encoder frames.
    """
    names = [f"self_attn\\.{m}" for m in modules if m.endswith("proj")]
    names += [f"encoder_attn\\.{m}" for m in modules if m in ("q_proj", "out_proj")]
    names += [m for m in modules if not m.endswith("proj")]
    return rf"^model\.decoder\.layers\.\d+\.({'|'.join(names)})$"


def build_peft_config(config: FinetuneConfig, total_steps: int):
    """A LoraConfig, or an AdaLoraConfig whose budget schedule fits ``total_steps``."""
    from peft import AdaLoraConfig, LoraConfig

    targets: list[str] | str = list(config.target_modules)
    if config.freeze_encoder:
        targets = decoder_only_targets(config.target_modules)
    if config.use_adalora:
        tinit, tfinal, delta_t = adalora_schedule(total_steps)
        return AdaLoraConfig(
            init_r=config.adalora_init_r,
            target_r=config.adalora_target_r,
            beta1=0.85,
            beta2=0.85,
            tinit=tinit,
            tfinal=tfinal,
            deltaT=delta_t,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            orth_reg_weight=0.5,
            target_modules=targets,
            total_step=total_steps,
        )
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        bias="none",
    )


def attach_adapter(model, config: FinetuneConfig, total_steps: int):
    """Wrap ``model`` in a PeftModel; only the adapter weights train."""
    from peft import get_peft_model

    if config.use_8bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return get_peft_model(model, build_peft_config(config, total_steps))
