"""``whisper-tune export-ggml``: Hugging Face Whisper → whisper.cpp GGML model file."""

from __future__ import annotations

import argparse

from whisper_tune.cli._args import add, add_bool

COMMAND = "export-ggml"
HELP = "write a Whisper model as a whisper.cpp GGML file (Android demo, desktop apps)"
DESCRIPTION = """\
Write a Hugging Face Whisper model (a merged fine-tune, a bundled model such as tiny.en, or a
hub id) as one whisper.cpp model file: header, mel filters, vocabulary and tensors, for
English-only and multilingual models. Matrices are f16 (or f32); --quantize q8_0/q5_0 uses
whisper.cpp's own ggml quantizer (needs pywhispercpp). The file is written under a temporary
name, read back and checked, then renamed into place. With --check_audio, whisper.cpp
(pywhispercpp) transcribes the clip from the new file and its text is compared with the
Hugging Face model's greedy transcript; exit status 1 when they differ. A model fine-tuned
with --dynamic_audio_ctx is checked as it runs: both engines encode only the clip's own
audio context (whisper.cpp's -ac).
"""


def register(parser: argparse.ArgumentParser) -> None:
    add(
        parser,
        "--model_path",
        required=True,
        help="Hugging Face Whisper directory (e.g. a merged fine-tune), a bundled model "
        "(tiny.en, base) or a hub id",
    )
    add(parser, "--output", required=True, help="GGML file to write, e.g. ggml-model.bin")
    add(
        parser,
        "--dtype",
        choices=("f16", "f32"),
        default="f16",
        help="type of the weight matrices (vectors and positional embeddings are always f32); "
        "note: whisper.cpp 1.8 cannot run f32 files on a CPU (its conv1d needs f16 kernels)",
    )
    add(
        parser,
        "--quantize",
        choices=("q8_0", "q5_0"),
        default=None,
        help="quantize the weight matrices with whisper.cpp's quantizer instead of --dtype",
    )
    add(
        parser,
        "--check_audio",
        default=None,
        help="audio clip (up to 30 s) to transcribe with whisper.cpp and with the Hugging Face "
        "model; prints both texts and whether they match",
    )
    add(
        parser,
        "--language",
        default=None,
        help="language of --check_audio for a multilingual model (e.g. zh, English); "
        "omit it to use the language the Hugging Face model detects",
    )
    add_bool(parser, "--local_files_only", False, "never download a hub id")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from whisper_tune.convert.ggml import export_ggml

    report = export_ggml(
        args.model_path,
        args.output,
        dtype=args.dtype,
        quantize=args.quantize,
        check_audio=args.check_audio,
        language=args.language,
        local_files_only=args.local_files_only,
    )
    hparams = report["hparams"]
    print(
        f"wrote {report['output']} ({report['bytes'] / 1e6:.1f} MB, {report['type']}, "
        f"{report['tensors']} tensors, {hparams['n_audio_layer']}+{hparams['n_text_layer']} "
        f"layers, {hparams['n_mels']} mel bins, vocabulary {hparams['n_vocab']}, "
        f"{'multilingual' if report['multilingual'] else 'English only'}) "
        f"from {report['source']}"
    )
    if report["dynamic_audio_ctx"]:
        print(whisper_cpp_hint(report["output"]))
    check = report.get("check")
    if check is None:
        return 0
    context = "30 s window" if check["audio_ctx"] == "full" else f"-ac {check['audio_ctx']}"
    print(f"check on {check['audio']} (language {check['language']}, {context}, greedy decoding):")
    print(f"  whisper.cpp:  {check['whisper_cpp_text']}")
    print(f"  Transformers: {check['hf_text']}")
    print("  same words" if check["same_text"] else "  WORDS DIFFER (after normalisation)")
    return 0 if check["same_text"] else 1


def whisper_cpp_hint(model_file: str, seconds: float = 3.2) -> str:
    """How to run a GGML file trained for dynamic audio context in whisper.cpp (``-ac``)."""
    from whisper_tune.audio_context import SECONDS_PER_POSITION, ContextRule, frames_of

    rule = ContextRule()
    example = rule.positions(frames_of(round(seconds * 16000)))
    return (
        "trained for dynamic audio context: run whisper.cpp with -ac N for clips up to 30 s, "
        f"N = the clip's length in {SECONDS_PER_POSITION * 1000:.0f} ms steps rounded up to a "
        f"multiple of {rule.multiple}, at least {rule.floor}; e.g. a {seconds} s clip: "
        f"whisper-cli -m {model_file} -ac {example} -f clip.wav"
    )
