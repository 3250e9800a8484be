"""Options of ``whisper-tune evaluate``, kept apart from the torch code that runs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from whisper_tune.audio_context import check_audio_ctx
from whisper_tune.data.hf_datasets import data_source, dataset_option
from whisper_tune.engine_settings import ENGINES, FILE_BATCH_SIZE, audio_ctx_option
from whisper_tune.errors import WhisperTuneError
from whisper_tune.inference.packing import PACK_CLIPS_HELP
from whisper_tune.options import TASKS, option

# the transcript normalisation before scoring: evaluate's and finetune's (checkpoint metric)
_SCORING = {
    "remove_pun": (True, "remove punctuation before scoring"),
    "to_simple": (True, "convert traditional to simplified Chinese before scoring"),
    "english_normalizer": (
        True,
        'English: Whisper\'s English normaliser before scoring ("Dr." = "doctor", "twenty" = '
        '"20"), as published scores use; false: case-folding and --remove_pun only (other '
        "languages are always case-folded)",
    ),
}


def scoring_option(name: str, group: str | None = None) -> Any:
    """The field of one normalisation option, declared once for every command that scores."""
    default, text = _SCORING[name]
    return option(default, help=text, group=group)


@dataclass
class EvalConfig:
    """Options of ``whisper-tune evaluate`` (the seed's evaluation.py names and defaults)."""

    test_data: str | None = option(
        None,
        help="manifest to evaluate on (JSONL) or a Hugging Face datasets source (save_to_disk "
        "folder, .parquet/.arrow files, audiofolder, hf://datasets/NAME); required unless "
        "--dataset_name is given",
    )
    model_path: tuple[str, ...] = option(
        ("tiny.en",),
        help="one or more models, scored side by side: Hugging Face dir, CTranslate2 dir, "
        "whisper.cpp GGML file, bundled name (tiny.en, base) or hub id, as transcribe takes",
    )
    engine: str = option(
        "auto",
        help="auto: as transcribe picks it (ct2 for a CTranslate2 dir or bundled name, "
        "transformers for a HF dir, whispercpp for a GGML file)",
        choices=ENGINES,
    )
    compute_type: str = option(
        "default",
        help="ct2: int8, float32... (default: int8 on a CPU, as transcribe); transformers: "
        "float32, float16, bfloat16 (default: float32)",
    )
    metric: str | None = option(
        None,
        help="cer: character error rate; wer: word error rate; default by language: "
        "cer for zh, ja, ko, th, ..., wer otherwise",
        choices=("cer", "wer"),
    )
    language: str | None = option(
        None,
        help="language code or name (zh, Chinese); a per-line 'language' wins; "
        "default: the model detects it",
    )
    detect_language: bool = option(
        False,
        help="leave every clip's language to the model, even where the manifest or --language "
        "names it, and score language identification against those names (the 'language ID' "
        "column): a multilingual model tuned on one language must still detect the others",
    )
    task: str = option("transcribe", help="decoder task", choices=TASKS)
    batch_size: int = option(
        FILE_BATCH_SIZE,
        help="clips decoded together, as transcribe's --batch_size: ct2 decodes clips of up "
        "to 30 s in one encoder pass and one beam search (other engines one at a time; 1: "
        "one at a time); a longer clip's windows this many at a time",
    )
    pack_clips: bool = option(False, help=PACK_CLIPS_HELP)
    num_workers: int = option(2, help="DataLoader worker processes reading the audio")
    num_beams: int = option(1, help="beam size (1 = greedy); --beam_size is the same")
    initial_prompt: str | None = option(None, help="text that conditions the first window")
    hotwords: str | None = option(None, help="words to favour, given as a prompt to every window")
    hallucination_guard: bool = option(
        True, help="drop segments decoded from silence, loops and degenerate text, as deployed"
    )
    remove_pun: bool = scoring_option("remove_pun")
    to_simple: bool = scoring_option("to_simple")
    english_normalizer: bool = scoring_option("english_normalizer")
    timestamps: bool = option(False, help="decode with timestamps (as deployed with them)")
    temperature_fallback: bool = option(
        False,
        help="re-decode a failing window at higher temperatures, as transcribe does; that "
        "samples at random, so it is off by default and a score is reproducible",
    )
    dataset_name: str | None = dataset_option("dataset_name")
    dataset_config: str | None = dataset_option("dataset_config")
    split: str | None = dataset_option("split")
    audio_column: str | None = dataset_option("audio_column")
    text_column: str | None = dataset_option("text_column")
    streaming: bool = dataset_option("streaming")
    min_audio_len: float = option(0.5, help="skip clips shorter (seconds)")
    max_audio_len: float = option(30.0, help="skip clips longer (seconds)")
    skip_bad: bool = option(False, help="skip and count unreadable audio instead of stopping")
    local_files_only: bool = option(True, help="never download the model from the hub")
    output_dir: str | None = option(
        None, help="report folder (default eval_results/<first model>_<manifest>)"
    )
    report: str | None = option(
        None,
        help="html: also write report.html, one self-contained page (no network): the table, a "
        "bar chart of the metric and the worst utterances with a word-level diff (characters "
        "for CER) of the reference vs each model's hypothesis",
        choices=("html",),
    )
    report_worst: int = option(
        20, help="--report html: how many utterances to show, most errors over all models first"
    )

    audio_ctx: str = audio_ctx_option()

    def __post_init__(self) -> None:
        check_audio_ctx(self.audio_ctx)
        self.test_data = data_source(self.test_data, self.dataset_name)
        if not self.test_data:
            raise WhisperTuneError("evaluate needs --test_data (or --dataset_name)")
        if isinstance(self.model_path, str):  # one model, as the seed's scripts pass it
            self.model_path = (self.model_path,)
