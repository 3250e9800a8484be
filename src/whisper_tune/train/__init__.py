"""LoRA / AdaLoRA fine-tuning of Whisper on top of the transformers Trainer."""
