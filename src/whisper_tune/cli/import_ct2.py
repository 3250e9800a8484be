"""``whisper-tune import-ct2``: CTranslate2 Whisper → Hugging Face Whisper (to fine-tune it)."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import add, add_bool

COMMAND = "import-ct2"
HELP = "rebuild a Hugging Face Whisper model from a CTranslate2 one, so it can be fine-tuned"
DESCRIPTION = """\
Read a CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json; float16 or
float32, any size, English-only or multilingual) and write a Hugging Face Whisper directory:
safetensors weights, config, generation config (alignment heads, suppress tokens, language
ids), tokenizer with timestamp tokens, feature extractor and import_report.json. It ends with a
parity check: greedy decodes of one clip by the new model and by CTranslate2 must match.
Exit status 1 when they do not.
"""


def register(parser: argparse.ArgumentParser) -> None:
    add(
        parser,
        "--model_path",
        required=True,
        help="CTranslate2 model directory, a bundled model (tiny.en, base) or a faster-whisper "
        "model id",
    )
    add(
        parser,
        "--output_dir",
        required=True,
        help="new folder for the Hugging Face model (must not exist or be empty)",
    )
    add(
        parser,
        "--check_audio",
        default=None,
        help="audio file (up to 30 s) for the parity check; default: a recorded sentence",
    )
    add(
        parser,
        "--language",
        default=None,
        help="language of --check_audio for a multilingual model, e.g. zh or Chinese; "
        "default: detected",
    )
    add_bool(parser, "--no_check", False, "skip the parity check")
    add_bool(parser, "--local_files_only", False, "never download a model id from the hub")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.convert.ct2_import import import_ct2

    report = import_ct2(
        args.model_path,
        args.output_dir,
        check_audio=args.check_audio,
        check=not args.no_check,
        local_files_only=args.local_files_only,
        check_language=args.language,
    )
    dims = report["dims"]
    print(
        f"imported {report['source']} ({report['parameters'] / 1e6:.2f} M parameters, "
        f"{dims['n_mels']} mel bins, vocabulary {dims['n_vocab']}, "
        f"{'multilingual' if report['multilingual'] else 'English only'}) "
        f"→ {report['output_dir']}"
    )
    parity = report.get("parity")
    if parity is None:
        print("parity check skipped (--no_check)")
        return 0
    print(f"parity check on {parity['audio']} ({parity['features']}):")
    print(f"  CTranslate2:  {parity['ct2_text']}")
    print(f"  Transformers: {parity['hf_text']}")
    print("  same text" if parity["same_text"] else "  TEXTS DIFFER")
    return 0 if parity["same_text"] else 1
