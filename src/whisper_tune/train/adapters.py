"""PEFT adapters for Whisper: LoRA and AdaLoRA configs, applied to a loaded model."""

from __future__ import annotations

from whisper_tune.train.config import FinetuneConfig


def adalora_schedule(total_steps: int) -> tuple[int, int, int]:
    """(tinit, tfinal, deltaT): the seed's 200/1000/10, scaled down for short runs."""
    tinit = min(200, max(1, total_steps // 10))
    tfinal = min(1000, max(1, total_steps * 3 // 10))
    delta_t = max(1, min(10, (total_steps - tinit - tfinal) // 5))
    return tinit, tfinal, delta_t


def partial_targets(modules: tuple[str, ...], first_encoder_layer: int, encoder_layers: int) -> str:
    """A PEFT regex for adapters in the decoder and the encoder layers from
    ``first_encoder_layer`` up; the layers below stay exactly the base model's.

    Cross-attention keys/values are left out: they only project the encoder output, and
    without adapters they need no gradient over all 1500 encoder frames.
    """
    projections = [m for m in modules if m.endswith("proj")]
    others = [m for m in modules if not m.endswith("proj")]
    decoder = [f"self_attn\\.{m}" for m in projections] + others
    decoder += [f"encoder_attn\\.{m}" for m in projections if m in ("q_proj", "out_proj")]
    pattern = rf"model\.decoder\.layers\.\d+\.({'|'.join(decoder)})"
    trained = "|".join(str(i) for i in range(first_encoder_layer, encoder_layers))
    if trained:
        encoder = [f"self_attn\\.{m}" for m in projections] + others
        pattern += rf"|model\.encoder\.layers\.({trained})\.({'|'.join(encoder)})"
    return f"^({pattern})$"


def build_peft_config(config: FinetuneConfig, total_steps: int, encoder_layers: int):
    """A LoraConfig, or an AdaLoraConfig whose budget schedule fits ``total_steps``."""
    from peft import AdaLoraConfig, LoraConfig

    targets: list[str] | str = list(config.target_modules)
    frozen = config.frozen_encoder_layers(encoder_layers)
    if frozen:
        targets = partial_targets(config.target_modules, frozen, encoder_layers)
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
    layers = model.config.encoder_layers
    return get_peft_model(model, build_peft_config(config, total_steps, layers))
