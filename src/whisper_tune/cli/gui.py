"""``whisper-tune gui``: the seed's infer_gui.py, a tkinter desktop app."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import add, add_model_options, engine_settings
from whisper_tune.engine_settings import GUI_DEFAULTS

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
        "--language",
        default=None,
        help="initial language (code such as zh or name such as Chinese); None or auto: detect",
    )
    add_model_options(parser, GUI_DEFAULTS, "CTranslate2 workers (parallel transcriptions)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.gui.app import run_app
    from whisper_tune.inference.types import TranscribeOptions

    options = TranscribeOptions(beam_size=args.beam_size, vad_filter=args.vad_filter)
    return run_app(engine_settings(args), options, args.language)
