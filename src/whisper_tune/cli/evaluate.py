"""``whisper-tune evaluate``: the seed's evaluation.py arguments."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import add, add_bool

COMMAND = "evaluate"
HELP = "CER/WER of a Whisper model on a JSONL manifest, with a per-utterance CSV"
DESCRIPTION = """\
Transcribe every utterance of --test_data with a Hugging Face Whisper model and score it.
Prints the score and writes summary.json (metric, score, utterances, audio seconds, wall
seconds, RTF = processing seconds / audio seconds) and utterances.csv (id, audio, reference,
hypothesis, errors, reference length, duration) to --output_dir.
"""


def register(parser: argparse.ArgumentParser) -> None:
    add(parser, "--test_data", required=True, help="manifest to evaluate on (JSONL)")
    add(
        parser,
        "--model_path",
        default="tiny.en",
        help="merged model dir, bundled name (tiny.en, base) or hub id (openai/whisper-tiny)",
    )
    add(
        parser,
        "--metric",
        default="cer",
        choices=["cer", "wer"],
        help="cer: character error rate (Chinese); wer: word error rate",
    )
    add(
        parser,
        "--language",
        default=None,
        help="language code or name (zh, Chinese); a per-line 'language' wins; "
        "default: the model detects it",
    )
    add(
        parser,
        "--task",
        default="transcribe",
        choices=["transcribe", "translate"],
        help="decoder task",
    )
    add(parser, "--batch_size", type=int, default=16, help="utterances per generate() call")
    add(parser, "--num_workers", type=int, default=2, help="DataLoader worker processes")
    add(parser, "--num_beams", type=int, default=1, help="beam size (1 = greedy)")
    add_bool(parser, "--remove_pun", True, "remove punctuation before scoring")
    add_bool(
        parser, "--to_simple", True, "convert traditional to simplified Chinese before scoring"
    )
    add_bool(
        parser,
        "--english_normalizer",
        False,
        'apply Whisper\'s English normaliser ("Dr." = "doctor", "twenty" = "20")',
    )
    add_bool(parser, "--timestamps", False, "decode with timestamps (as deployed with them)")
    add(parser, "--min_audio_len", type=float, default=0.5, help="skip clips shorter (seconds)")
    add(parser, "--max_audio_len", type=float, default=30.0, help="skip clips longer (seconds)")
    add_bool(parser, "--skip_bad", False, "skip and count unreadable audio instead of stopping")
    add_bool(parser, "--local_files_only", True, "never download the model from the hub")
    add(
        parser,
        "--output_dir",
        default=None,
        help="report folder (default eval_results/<model>_<manifest>)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from whisper_tune.evaluate import EvalConfig, evaluate

    config = EvalConfig(**{f.name: getattr(args, f.name) for f in fields(EvalConfig)})
    report = evaluate(config)
    print(
        f"{report.metric.upper()}: {report.score:.5f} on {report.utterances} utterances "
        f"({report.audio_seconds:.1f} s audio, RTF {report.rtf:.3f})"
    )
    print(f"report: {report.report_dir}/summary.json, {report.report_dir}/utterances.csv")
    return 0
