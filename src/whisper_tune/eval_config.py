"""Options of ``whisper-tune evaluate``, kept apart from the torch code that runs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from whisper_tune.options import TASKS, option

# the transcript normalisation before scoring: evaluate's and finetune's (checkpoint metric)
_SCORING = {
    "remove_pun": (True, "remove punctuation before scoring"),
    "to_simple": (True, "convert traditional to simplified Chinese before scoring"),
    "english_normalizer": (
        False,
        'apply Whisper\'s English normaliser before scoring ("Dr." = "doctor", "twenty" = "20")',
    ),
}


def scoring_option(name: str, group: str | None = None) -> Any:
    """The field of one normalisation option, declared once for every command that scores."""
    default, text = _SCORING[name]
    return option(default, help=text, group=group)


@dataclass
class EvalConfig:
    """Options of ``whisper-tune evaluate`` (the seed's evaluation.py names and defaults)."""

    test_data: str = option(help="manifest to evaluate on (JSONL)")
    model_path: str = option(
        "tiny.en",
        help="merged model dir, bundled name (tiny.en, base) or hub id (openai/whisper-tiny)",
    )
    metric: str = option(
        "cer",
        help="cer: character error rate (Chinese); wer: word error rate",
        choices=("cer", "wer"),
    )
    language: str | None = option(
        None,
        help="language code or name (zh, Chinese); a per-line 'language' wins; "
        "default: the model detects it",
    )
    task: str = option("transcribe", help="decoder task", choices=TASKS)
    batch_size: int = option(16, help="utterances per generate() call")
    num_workers: int = option(2, help="DataLoader worker processes")
    num_beams: int = option(1, help="beam size (1 = greedy)")
    remove_pun: bool = scoring_option("remove_pun")
    to_simple: bool = scoring_option("to_simple")
    english_normalizer: bool = scoring_option("english_normalizer")
    timestamps: bool = option(False, help="decode with timestamps (as deployed with them)")
    min_audio_len: float = option(0.5, help="skip clips shorter (seconds)")
    max_audio_len: float = option(30.0, help="skip clips longer (seconds)")
    skip_bad: bool = option(False, help="skip and count unreadable audio instead of stopping")
    local_files_only: bool = option(True, help="never download the model from the hub")
    output_dir: str | None = option(
        None, help="report folder (default eval_results/<model>_<manifest>)"
    )
