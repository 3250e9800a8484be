"""``whisper-tune evaluate``: the seed's evaluation.py arguments."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import add_config_options, config_from_args
from whisper_tune.eval_config import EvalConfig

COMMAND = "evaluate"
HELP = "CER/WER of a Whisper model on a JSONL manifest, with a per-utterance CSV"
DESCRIPTION = """\
Transcribe every utterance of --test_data with a Hugging Face Whisper model and score it.
Prints the score and writes summary.json (metric, score, utterances, audio seconds, wall
seconds, RTF = processing seconds / audio seconds) and utterances.csv (id, audio, reference,
hypothesis, errors, reference length, duration) to --output_dir.
"""


def register(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, EvalConfig)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.evaluate import evaluate

    report = evaluate(config_from_args(EvalConfig, args))
    print(
        f"{report.metric.upper()}: {report.score:.5f} on {report.utterances} utterances "
        f"({report.audio_seconds:.1f} s audio, RTF {report.rtf:.3f})"
    )
    print(f"report: {report.report_dir}/summary.json, {report.report_dir}/utterances.csv")
    return 0
