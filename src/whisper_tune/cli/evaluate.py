"""``whisper-tune evaluate``: the seed's evaluation.py arguments."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import add_config_options, config_from_args
from whisper_tune.eval_config import EvalConfig

COMMAND = "evaluate"
HELP = "CER/WER of one or more models (any engine) on a JSONL manifest, side by side"
DESCRIPTION = """\
Transcribe every utterance of --test_data with each --model_path (Hugging Face dir,
CTranslate2 dir, whisper.cpp GGML file, bundled name or hub id) through the same engine and
decoding options transcribe uses, and score it. English is scored after Whisper's English
normaliser (--english_normalizer false: case-folding only), other languages case-folded and
without punctuation; --metric defaults to CER for zh/ja/ko/th..., WER otherwise.
Prints a table (metric, RTF = processing seconds / audio seconds, peak RSS, size on disk per
model) and writes to --output_dir: comparison.md and comparison.json (the table),
summary.json (the first model's figures, every model's under "models") and utterances.csv
(reference, then a hypothesis and an errors column per model); --report html adds report.html,
a self-contained page (no network) with the table, a bar chart of the metric and the
--report_worst utterances with the most errors, each hypothesis diffed against the reference.
"""


def register(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, EvalConfig)
    parser.add_argument(
        "--beam_size",
        "--beam-size",
        dest="num_beams",
        type=int,
        default=argparse.SUPPRESS,
        help="same as --num_beams (transcribe's name)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.evaluate import comparison_markdown, evaluate_models
    from whisper_tune.evaluate_html import REPORT_FILE

    config = config_from_args(EvalConfig, args)
    reports = evaluate_models(config)
    for report in reports:
        print(
            f"{report.model}: {report.metric.upper()} {report.score:.5f} on "
            f"{report.utterances} utterances ({report.audio_seconds:.1f} s audio, "
            f"RTF {report.rtf:.3f})"
        )
    print(comparison_markdown(reports), end="")
    folder = reports[0].report_dir
    files = ["comparison.md", "summary.json", "utterances.csv"]
    files += [REPORT_FILE] if config.report == "html" else []
    print("report: " + ", ".join(f"{folder}/{name}" for name in files))
    return 0
