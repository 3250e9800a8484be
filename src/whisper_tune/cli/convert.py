"""``whisper-tune convert``: Hugging Face Whisper → CTranslate2, parity-checked."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import add, add_bool

COMMAND = "convert"
HELP = "convert a Hugging Face Whisper model to CTranslate2 (faster-whisper) with a parity check"
DESCRIPTION = """\
Convert a merged or stock Hugging Face Whisper model with CTranslate2's converter into a
folder faster-whisper loads offline (model.bin, vocabulary, tokenizer.json,
preprocessor_config.json, generation_config.json). A parity check then decodes one clip
(--audio_path, else a recorded sentence) greedily with both models and reports both texts
and their agreement (tokens, and words or, for languages written without spaces, characters);
the report is printed and saved as conversion_report.json in --output_dir. Exit status 1 when
the parity check fails (fewer than 80 % of the words/characters agree).
"""


def register(parser: argparse.ArgumentParser) -> None:
    add(
        parser,
        "--model_path",
        required=True,
        help="Hugging Face Whisper dir (e.g. models/whisper-tiny-finetune), bundled name or hub id",
    )
    add(parser, "--output_dir", required=True, help="folder for the CTranslate2 model")
    add(
        parser,
        "--quantization",
        default="float16",
        choices=["float16", "int8", "int8_float16", "int8_float32", "float32", "bfloat16"],
        help="weight type of the converted model",
    )
    add(parser, "--audio_path", default=None, help="clip for the parity check (first 30 s used)")
    add_bool(parser, "--no_check", False, "skip the parity check")
    add_bool(parser, "--local_files_only", False, "never download a hub model")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    import json

    from whisper_tune.convert.ct2_export import convert_to_ct2
    from whisper_tune.convert.parity import parity_passed

    report = convert_to_ct2(
        args.model_path,
        args.output_dir,
        quantization=args.quantization,
        audio_path=args.audio_path,
        check=not args.no_check,
        local_files_only=args.local_files_only,
    )
    print(json.dumps(report, ensure_ascii=False, indent=2))
    parity = report.get("parity")
    return 1 if parity and not parity_passed(parity) else 0
