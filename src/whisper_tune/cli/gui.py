"""``whisper-tune gui``: the seed's infer_gui.py, a tkinter desktop app."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import add, add_bool

COMMAND = "gui"
HELP = "desktop app: open or record audio, recognise it, save txt/srt/vtt/json"
DESCRIPTION = (
    "Open audio files or record from the microphone, play them, recognise them with a "
    "CTranslate2 (or Hugging Face) Whisper model, and save or copy the transcript. "
    "The model loads in the background; the window stays responsive while it decodes."
)


def register(parser: argparse.ArgumentParser) -> None:
    add(
        parser,
        "--model_path",
        default="tiny.en",
        help="model directory (CTranslate2 or Hugging Face) or bundled name: tiny.en, base",
    )
    add(
        parser,
        "--language",
        default=None,
        help="initial language (code such as zh or name such as Chinese); None or auto: detect",
    )
    add_bool(parser, "--use_gpu", False, "run the model on a CUDA GPU")
    add_bool(parser, "--use_int8", False, "int8 weights (int8_float16 on a GPU): faster, smaller")
    add(parser, "--beam_size", type=int, default=5, help="beam size for decoding")
    add_bool(parser, "--vad_filter", False, "skip silence with the Silero VAD before decoding")
    add(
        parser,
        "--num_workers",
        type=int,
        default=1,
        help="CTranslate2 workers (parallel transcriptions)",
    )
    add_bool(parser, "--local_files_only", True, "never download a model from the hub")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.gui.app import run_app

    return run_app(
        model_path=args.model_path,
        language=args.language,
        use_gpu=args.use_gpu,
        use_int8=args.use_int8,
        beam_size=args.beam_size,
        vad_filter=args.vad_filter,
        num_workers=args.num_workers,
        local_files_only=args.local_files_only,
    )
