"""``whisper-tune transcribe``: the seed's infer_ct2.py / infer_tfs.py arguments in one command."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import (
    add,
    add_bool,
    add_model_options,
    add_ray_options,
    engine_settings,
    ray_settings,
    str2bool,
)
from whisper_tune.engine_settings import FILE_BATCH_SIZE, EngineSettings
from whisper_tune.inference.packing import PACK_CLIPS_HELP

COMMAND = "transcribe"
HELP = "transcribe audio files or folders to JSON, text, SRT, VTT or TSV"
DESCRIPTION = """\
Transcribe audio of any length with a CTranslate2 model (faster-whisper) or a Hugging Face
Whisper (transformers); the engine follows the model directory unless --engine says.
One file prints the seed's JSON ({language, duration, results: [{start, end, text}], text});
several files or a folder print one JSON line per file, or write files with --output_dir.
Short files (up to 30 s) of one known language are packed several to a 30 s window
(--pack_clips) and the windows decoded several at a time (--batch_size); txt output decodes
without timestamp tokens, every other format with them.
A hallucination guard drops segments decoded from silence, repeated-phrase loops and
degenerate text; --no_hallucination_guard keeps everything.
With --ray the files are spread over a Ray cluster (one model per actor); each file's output
and its line in <output_dir>/transcripts.jsonl are written as it finishes, and a rerun skips
the files already done.
"""

OUTPUT_FORMATS = ("json", "verbose_json", "txt", "srt", "vtt", "tsv", "all")


def register(parser: argparse.ArgumentParser) -> None:
    add(
        parser,
        "--audio_path",
        nargs="+",
        required=True,
        help="audio files, folders and/or JSONL manifests (their audio_path fields)",
    )
    add_model_options(parser, EngineSettings(), "parallel ct2 decoders (threads)")
    add(parser, "--language", default=None, help="language code or name; default: detect")
    add(
        parser,
        "--task",
        default="transcribe",
        choices=["transcribe", "translate"],
        help="transcribe, or translate into English",
    )
    add(
        parser,
        "--batch_size",
        type=int,
        default=None,
        help=f"windows decoded together. Files of at most 30 s: N files at a time (default "
        f"{FILE_BATCH_SIZE}) in one encoder pass and one beam search (ct2 engine; transformers "
        "and whisper.cpp decode files one by one); a window whose text fails the thresholds is "
        "decoded again alone with the temperature fallback, so results equal one-by-one "
        "decoding. Longer files: N of their 30 s windows at a time (default 1: sequential, "
        "each window conditioned on the text before it; >1 batched long-form: no previous-text "
        "conditioning, first temperature only). Nothing is conditioned across files unless "
        "they are packed (--pack_clips)",
    )
    add_bool(
        parser,
        "--pack_clips",
        True,
        f"{PACK_CLIPS_HELP}. On by default for several files (2.4x a faster-whisper loop on "
        "48 short clips here; not yet with --ray); false gives each file its own window",
    )
    add_bool(parser, "--word_timestamps", False, "word times (either engine; see verbose_json)")
    add(parser, "--initial_prompt", default=None, help="text that conditions the first window")
    add(
        parser,
        "--hotwords",
        default=None,
        help="words to favour, given as a prompt to every window",
    )
    add(
        parser,
        "--condition_on_previous_text",
        type=str2bool,
        default=None,
        metavar="BOOL",
        help="prompt each 30 s window of a long file with the text decoded before it (default: "
        "true, as faster-whisper; false keeps a loop or a wrong language from carrying over)",
    )
    add_bool(parser, "--to_simple", False, "convert traditional to simplified Chinese")
    add_bool(parser, "--remove_pun", False, "remove punctuation from the text")
    add(parser, "--output_dir", default=None, help="write <audio name>.<format> files here")
    add(
        parser,
        "--output_format",
        default="json",
        choices=OUTPUT_FORMATS,
        help="json is the seed's shape; verbose_json adds scores, tokens and words",
    )
    _add_subtitle_options(parser)
    add_ray_options(parser)
    add(
        parser,
        "--no_hallucination_guard",
        action="store_true",
        help="keep segments the guard would drop (silence, loops, degenerate text)",
    )
    parser.set_defaults(run=_run)


def _add_subtitle_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "subtitles",
        "SRT/VTT cues cut from word timings; any of these turns on --word_timestamps",
    )
    add(
        group,
        "--max_line_width",
        type=int,
        default=None,
        metavar="N",
        help="at most N characters a line (a CJK character counts one); without "
        "--max_line_count each segment is one cue of as many lines as it needs",
    )
    add(
        group,
        "--max_line_count",
        type=int,
        default=None,
        metavar="N",
        help="at most N lines a cue; with --max_line_width or --max_words_per_line, "
        "cues run across segments and break at pauses over 3 s",
    )
    add(
        group,
        "--max_words_per_line",
        type=int,
        default=None,
        metavar="N",
        help="at most N words a line (Chinese, Japanese, Thai...: a word is a character "
        "or a few); "
        "without --max_line_count each line is one cue",
    )
    add_bool(group, "--highlight_words", False, "underline each word as it is spoken (<u>…</u>)")


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.inference.files import OutputSettings, transcribe_files, transcribe_on_ray
    from whisper_tune.inference.subtitles import SubtitleOptions
    from whisper_tune.inference.types import TranscribeOptions

    subtitles = SubtitleOptions(
        max_line_width=args.max_line_width,
        max_line_count=args.max_line_count,
        max_words_per_line=args.max_words_per_line,
        highlight_words=args.highlight_words,
    )
    options = TranscribeOptions(
        language=args.language,
        task=args.task,
        beam_size=args.beam_size,
        batch_size=args.batch_size or 1,
        vad_filter=args.vad_filter,
        word_timestamps=args.word_timestamps or subtitles.uses_words,
        initial_prompt=args.initial_prompt,
        hotwords=args.hotwords,
        hallucination_guard=not args.no_hallucination_guard,
        to_simple=args.to_simple,
        remove_pun=args.remove_pun,
        **_set(condition_on_previous_text=args.condition_on_previous_text),
    )
    output = OutputSettings(
        output_dir=args.output_dir, output_format=args.output_format, subtitles=subtitles
    )
    file_batch = args.batch_size or FILE_BATCH_SIZE
    ray = ray_settings(args)
    if ray is not None:
        transcribe_on_ray(args.audio_path, engine_settings(args), options, output, ray, file_batch)
    else:
        transcribe_files(
            args.audio_path, engine_settings(args), options, output, file_batch, args.pack_clips
        )
    return 0


def _set(**values: object) -> dict[str, object]:
    """The options given on the command line; the rest keep :class:`TranscribeOptions`' own."""
    return {name: value for name, value in values.items() if value is not None}
