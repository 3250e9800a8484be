"""How a model is loaded for transcription: one settings object for transcribe, serve and gui.

Torch-free, so the command line can derive its model flags from these fields cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from whisper_tune.audio_context import FULL_POSITIONS, check_audio_ctx
from whisper_tune.options import check_ranges, option

ENGINES = ("auto", "ct2", "transformers", "whispercpp")
# short files (<= 30 s) decoded together by transcribe and evaluate unless --batch_size says
FILE_BATCH_SIZE = 4  # beam 5 x 4 windows: ~500 MB peak for tiny.en int8; 8 took ~750 MB


def audio_ctx_option() -> Any:
    """The ``--audio_ctx`` field, declared once for transcribe, serve, gui and evaluate."""
    return option(
        "auto",
        help="encoder context per window: auto: a short clip (and the last part of long audio) "
        "at its own length on a model fine-tuned with finetune --dynamic_audio_ctx (2 s "
        "floor, whole seconds), 30 s windows on any other model; full: always 30 s; N: at "
        f"least N encoder positions of 20 ms (1..{FULL_POSITIONS}, whisper.cpp's -ac; a "
        "stock model drifts or loops below 30 s, a warning says so)",
    )


@dataclass(frozen=True)
class EngineSettings:
    """What :func:`whisper_tune.inference.load_transcriber` needs to load a model."""

    model_path: str = option(
        "tiny.en",
        help="CTranslate2 dir, Hugging Face Whisper dir, whisper.cpp GGML file or bundled name "
        "(tiny.en, base)",
    )
    engine: str = option(
        "auto",
        help="auto: ct2 for a CTranslate2 dir, bundled name or faster-whisper id; "
        "transformers for a HF dir (use it for HF hub ids such as openai/whisper-tiny); "
        "whispercpp for a GGML file",
        choices=ENGINES,
    )
    device: str = "cpu"  # "cuda" with the seed's --use_gpu
    compute_type: str = option(
        "default",
        help="ct2: int8, int8_float16, int8_float32, float16, float32... (default: int8 on a "
        "CPU, float16 on a GPU); transformers: float32, float16, bfloat16 (default: float32 on "
        "a CPU, float16 on a GPU)",
    )
    use_int8: bool = option(
        False, help="int8 weights (int8_float16 on a GPU); on a CPU ct2 uses int8 by default"
    )
    num_workers: int = option(1, help="parallel ct2 decoders (threads)")
    cpu_threads: int = option(0, help="threads per decoder (0 = default)")
    local_files_only: bool = option(False, help="never download a model from the hub")
    assistant_model_path: str | None = option(
        None, help="smaller HF Whisper for speculative decoding (transformers engine)"
    )
    audio_ctx: str = audio_ctx_option()

    def __post_init__(self) -> None:
        check_audio_ctx(self.audio_ctx)
        check_ranges(self, num_workers=self.num_workers >= 1, cpu_threads=self.cpu_threads >= 0)


# What each surface starts from: like the seed's infer_server.py and infer_gui.py, the server
# and the desktop app never download a model unless told, and the server runs two workers.
SERVER_DEFAULTS = EngineSettings(num_workers=2, local_files_only=True)
GUI_DEFAULTS = EngineSettings(local_files_only=True)
