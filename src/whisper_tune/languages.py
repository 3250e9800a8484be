"""Whisper language names and codes: accept "zh", "Chinese" or "chinese" alike."""

from __future__ import annotations

from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

from whisper_tune.errors import WhisperTuneError
from whisper_tune.options import TASKS


def language_code(language: str | None) -> str | None:
    """Return the Whisper code ("zh") for a code or English name; None/"auto" means detect."""
    if language is None:
        return None
    key = language.strip().lower()
    if key in ("", "auto", "none"):
        return None
    if key in LANGUAGES:
        return key
    if key in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[key]
    raise WhisperTuneError(
        f"unknown language {language!r}: use a Whisper code such as 'zh' or 'en', "
        "or a name such as 'Chinese'"
    )


# written without spaces between words (Korean: short words, scored by syllable as usual)
CER_LANGUAGES = frozenset({"zh", "yue", "ja", "ko", "th", "lo", "my", "bo"})


def default_metric(language: str | None) -> str:
    """The field's usual metric for a language code: CER where words are not spaced, else WER."""
    return "cer" if language in CER_LANGUAGES else "wer"


def language_name(code: str) -> str:
    """English name Whisper uses for ``code`` (e.g. "chinese")."""
    return LANGUAGES[code]


def check_task(task: str) -> str:
    if task not in TASKS:
        raise WhisperTuneError(f"unknown task {task!r}: use 'transcribe' or 'translate'")
    return task
