"""Conversions between Whisper formats: HF → CTranslate2 (convert), CTranslate2 → HF
(import-ct2), HF → GGML (export-ggml)."""
