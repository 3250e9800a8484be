"""Conversions between Whisper formats: CTranslate2 → Hugging Face (import-ct2)."""
