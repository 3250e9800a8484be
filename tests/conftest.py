"""Shared fixtures. Nothing here reaches a network: hub access is switched off for tests."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# --- tiny random Whisper models (owned by the import-ct2 work) ---------------------------

# --- synthetic speech (owned by the synthesis work) --------------------------------------
