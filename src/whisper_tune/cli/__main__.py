"""``python -m whisper_tune.cli`` (what ``torchrun -m whisper_tune.cli finetune ...`` runs)."""

from whisper_tune.cli import main

main()
