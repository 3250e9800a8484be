"""``merge``: LoRA/AdaLoRA adapter + base model → a standalone Hugging Face Whisper dir."""

from __future__ import annotations

import json
from pathlib import Path

from whisper_tune.audio_context import copy_marker
from whisper_tune.errors import ModelError
from whisper_tune.fsutil import atomic_dir
from whisper_tune.models import load_processor, load_whisper, model_name
from whisper_tune.resolve import resolve_hf_model
from whisper_tune.train.config import read_run_config


def adapter_base_model(lora_model: str | Path, local_files_only: bool = False) -> str:
    """The base model an adapter was trained on (the run config's reference wins)."""
    folder = Path(lora_model)
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise ModelError(
            f"{folder} is not a LoRA checkpoint (no adapter_config.json); "
            "pass e.g. output/whisper-tiny/checkpoint-best"
        )
    run = read_run_config(folder)
    if run.get("base_model"):
        return run["base_model"]
    base = json.loads(config_path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise ModelError(f"{config_path} does not name its base model")
    return base


def merge_lora(
    lora_model: str | Path,
    output_dir: str | Path = "models/",
    base_model: str | None = None,
    local_files_only: bool = False,
) -> Path:
    """Merge the adapter into its base model; write ``<output_dir>/<base-name>-finetune/``."""
    from peft import PeftModel

    base_reference = base_model or adapter_base_model(lora_model, local_files_only)
    resolved = resolve_hf_model(base_reference, local_files_only)
    base = load_whisper(resolved, local_files_only)
    processor = load_processor(resolved, local_files_only)
    try:
        merged = PeftModel.from_pretrained(base, str(lora_model)).merge_and_unload()
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot apply adapter {lora_model} to {base_reference}: {exc}") from None
    merged.generation_config = base.generation_config
    merged.config.use_cache = True

    target = Path(output_dir) / f"{model_name(base_reference)}-finetune"
    with atomic_dir(target) as tmp:
        merged.save_pretrained(str(tmp))
        processor.save_pretrained(str(tmp))
        copy_marker(lora_model, tmp)  # trained for dynamic audio context: the merge is too
        info = {
            "base_model": base_reference,
            "lora_model": str(lora_model),
            "run_config": read_run_config(lora_model),
        }
        (tmp / "merge_info.json").write_text(
            json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8"
        )
    return target
