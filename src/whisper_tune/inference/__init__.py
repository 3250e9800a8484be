"""One transcription interface (``Transcriber``) over CTranslate2 and transformers engines."""
