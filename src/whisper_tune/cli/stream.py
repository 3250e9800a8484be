"""``whisper-tune stream``: live transcription of the microphone or of a file played in."""

from __future__ import annotations

import argparse
import sys

from whisper_tune.cli._args import (
    add,
    add_bool,
    add_config_options,
    add_model_options,
    config_from_args,
    engine_settings,
)
from whisper_tune.engine_settings import EngineSettings

COMMAND = "stream"
HELP = "live transcription of the microphone (or a file played in) as words are spoken"
DESCRIPTION = """\
Transcribe as the audio arrives: the buffer is decoded again every --min_chunk_seconds and
the words two decodes agree on are committed (LocalAgreement-2, as whisper_streaming);
committed text is never taken back, the rest is shown as partial text that may still change.
The Silero VAD skips silence and ends a turn after --end_silence_seconds of it.
Without --audio_path the default microphone is used (Ctrl+C stops); --audio_path plays a file
in, at real-time speed with --realtime, else as fast as it decodes.
On a terminal the current turn is rewritten in place (partial text in grey) and each turn
ends as one "[start --> end] text" line. --output_format prints the turns in that format
when the stream ends (the live lines then go to stderr).
"""

OUTPUT_FORMATS = ("txt", "srt", "vtt", "json", "verbose_json")


def register(parser: argparse.ArgumentParser) -> None:
    add(parser, "--audio_path", default=None, help="a file to play in; default: the microphone")
    add_bool(parser, "--realtime", False, "play --audio_path in at real-time speed")
    add_model_options(parser, EngineSettings(), "parallel ct2 decoders (threads)")
    add(parser, "--language", default=None, help="language code or name; default: detect")
    add(parser, "--initial_prompt", default=None, help="text that conditions the first decode")
    add(
        parser,
        "--output_format",
        default=None,
        choices=OUTPUT_FORMATS,
        help="print the committed turns in this format at the end",
    )
    from whisper_tune.inference.streaming import StreamingSettings

    add_config_options(parser, StreamingSettings)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.inference import load_transcriber
    from whisper_tune.inference.live import ConsoleView, file_blocks, run_live
    from whisper_tune.inference.streaming import StreamingSettings, StreamingTranscriber
    from whisper_tune.inference.types import TranscribeOptions
    from whisper_tune.inference.writers import make_writer

    settings = config_from_args(StreamingSettings, args)
    options = TranscribeOptions(
        language=args.language, beam_size=args.beam_size, initial_prompt=args.initial_prompt
    )
    blocks = file_blocks(args.audio_path, args.realtime) if args.audio_path else None
    stream = StreamingTranscriber(load_transcriber(engine_settings(args)), options, settings)
    view = ConsoleView(sys.stderr if args.output_format else sys.stdout)
    if blocks is not None:
        transcript = run_live(blocks, stream, view)
    else:
        from whisper_tune.gui.devices import LiveMicrophone

        microphone = LiveMicrophone().open()
        try:
            transcript = run_live(microphone, stream, view)
        finally:
            microphone.close()
    if args.output_format:
        sys.stdout.write(make_writer(args.output_format).format(transcript))
    return 0
