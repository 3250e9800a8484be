"""``whisper-tune label``: pseudo-label untranscribed audio into a training manifest."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import (
    add,
    add_config_options,
    add_model_options,
    add_ray_options,
    config_from_args,
    engine_settings,
    ray_settings,
)
from whisper_tune.engine_settings import EngineSettings
from whisper_tune.label.filters import LabelFilters

COMMAND = "label"
HELP = "pseudo-label untranscribed audio with a teacher model into a training manifest"
DESCRIPTION = """\
Transcribe untranscribed audio with a teacher model (--model_path: a bigger Whisper, or one
steered to the domain with --hotwords / --initial_prompt) into the seed's JSONL manifest, for
`whisper-tune finetune --train_data OUTPUT`. The teacher decodes each file with timestamps
(and the Silero VAD unless --vad_filter false); every decoded segment is judged by the
filters below, and runs of consecutive kept segments become records of up to 30 s that point
at the original file ({"audio": {"path", "start_time", "end_time"}, "sentence", "language",
"duration", "sentences": [{start, end, text}]}). A dropped segment ends a record, so no record
holds speech without its text. The optional agreement filter decodes each segment a second
time (--agreement beam: the other search; --agreement_model: another model) and keeps it only
when the two texts agree within --max_disagreement, as distil-whisper filters its labels.
Each file's verdicts go to a job log beside the manifest (pseudo.jsonl: pseudo.job.jsonl) as
it finishes, so a rerun with the same settings skips the files done (--ray: on a Ray cluster,
one teacher per actor); the manifest is then written atomically from the log, with a summary:
files, audio hours, segments kept and dropped by which filter. Unreadable files are recorded
and skipped; the run then exits non-zero naming them (the manifest holds every other file).
"""


def register(parser: argparse.ArgumentParser) -> None:
    add(
        parser,
        "--audio_path",
        nargs="+",
        required=True,
        help="audio files, folders (the audio files directly inside) and/or JSONL lists of "
        "files (their audio_path fields, as transcribe prints them)",
    )
    add(
        parser,
        "--output",
        default="dataset/pseudo.jsonl",
        help="the JSONL manifest to write (replaced atomically)",
    )
    add_model_options(parser, EngineSettings(), "parallel ct2 decoders (threads)")
    parser.set_defaults(vad_filter=True)
    add(parser, "--language", default=None, help="language code or name; default: detect")
    add(parser, "--initial_prompt", default=None, help="text that conditions the first window")
    add(
        parser,
        "--hotwords",
        default=None,
        help="words to favour (the domain's terms), given as a prompt to every window",
    )
    add_config_options(parser, LabelFilters)
    add_ray_options(parser)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.inference.types import TranscribeOptions
    from whisper_tune.label.run import label_files

    summary = label_files(
        args.audio_path,
        engine_settings(args),
        TranscribeOptions(
            language=args.language,
            beam_size=args.beam_size,
            vad_filter=args.vad_filter,
            initial_prompt=args.initial_prompt,
            hotwords=args.hotwords,
        ),
        config_from_args(LabelFilters, args),
        args.output,
        ray_settings(args),
    )
    print(summary.text())
    summary.check()
    print(f"next: whisper-tune finetune --train_data {args.output}")
    return 0
