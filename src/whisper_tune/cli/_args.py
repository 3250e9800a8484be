"""Argument helpers: the seed's underscore names with dashed aliases, seed-style booleans."""

from __future__ import annotations

import argparse


def str2bool(value: str | bool) -> bool:
    """Accept the seed's ``--flag True`` / ``--flag=false`` spellings."""
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def option_names(name: str) -> list[str]:
    """``--base_model`` plus its dashed spelling ``--base-model``."""
    dashed = name.replace("_", "-")
    return [name] if dashed == name else [name, dashed]


def add(parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, **kwargs) -> None:
    """Add an option under its seed name and dashed alias."""
    kwargs.setdefault("dest", name.lstrip("-"))
    parser.add_argument(*option_names(name), **kwargs)


def add_bool(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, default: bool, help: str
) -> None:
    """A boolean that works as ``--flag``, ``--flag true`` and ``--flag=False``."""
    add(
        parser,
        name,
        type=str2bool,
        nargs="?",
        const=True,
        default=default,
        metavar="BOOL",
        help=help,
    )


def add_model_options(
    parser: argparse.ArgumentParser,
    *,
    num_workers: int,
    num_workers_help: str,
    local_files_only: bool,
) -> None:
    """The seed's inference flags, shared by ``transcribe``, ``serve`` and ``gui``."""
    add(
        parser,
        "--model_path",
        default="tiny.en",
        help="CTranslate2 dir, Hugging Face Whisper dir, or bundled name (tiny.en, base)",
    )
    add_bool(parser, "--use_gpu", False, "run the model on a CUDA GPU")
    add_bool(parser, "--use_int8", False, "int8 weights (int8_float16 on a GPU): faster, smaller")
    parser.add_argument(
        "--beam_size",
        "--beam-size",
        "--num_beams",
        dest="beam_size",
        type=int,
        default=5,
        help="beam size (1 = greedy; --num_beams is the seed's infer_tfs.py name)",
    )
    add_bool(parser, "--vad_filter", False, "skip non-speech with the Silero VAD before decoding")
    add(parser, "--num_workers", type=int, default=num_workers, help=num_workers_help)
    add_bool(parser, "--local_files_only", local_files_only, "never download a model from the hub")
