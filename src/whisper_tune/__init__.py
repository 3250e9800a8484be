"""whisper-tune: fine-tune, evaluate, convert and serve OpenAI Whisper models."""

__version__ = "0.1.0"
