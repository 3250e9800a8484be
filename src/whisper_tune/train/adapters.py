"""PEFT adapters for Whisper: LoRA and AdaLoRA configs, applied to a loaded model."""

from __future__ import annotations

from whisper_tune.train.config import FinetuneConfig


def adalora_schedule(total_steps: int) -> tuple[int, int, int]:
    """(tinit, tfinal, deltaT): the seed's 200/1000/10, scaled down for short runs."""
    tinit = min(200, max(1, total_steps // 10))
    tfinal = min(1000, max(1, total_steps * 3 // 10))
    delta_t = max(1, min(10, (total_steps - tinit - tfinal) // 5))
    return tinit, tfinal, delta_t


def build_peft_config(config: FinetuneConfig, total_steps: int):
    """A LoraConfig, or an AdaLoraConfig whose budget schedule fits ``total_steps``."""
    from peft import AdaLoraConfig, LoraConfig

    targets = list(config.target_modules)
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
    """Wrap ``model`` in a PeftModel (or load the adapter being resumed) and freeze the rest."""
    from peft import get_peft_model

    if config.use_8bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    if config.freeze_encoder:
        model.model.encoder.requires_grad_(False)
    model = get_peft_model(model, build_peft_config(config, total_steps))
    if config.freeze_encoder:
        for name, parameter in model.named_parameters():
            if ".encoder." in name:
                parameter.requires_grad_(False)
    return model
