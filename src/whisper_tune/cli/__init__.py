"""The ``whisper-tune`` command line: argument parsing only.

Each module in this package defines ``COMMAND``, ``HELP`` and ``register(parser)``; the
parser's ``run`` default is the function that calls the library.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from whisper_tune import __version__
from whisper_tune.errors import WhisperTuneError

# The order subcommands are listed in, following the pipeline; others follow alphabetically.
_PIPELINE_ORDER = (
    "demo",
    "prepare",
    "label",
    "finetune",
    "merge",
    "evaluate",
    "import-ct2",
    "convert",
    "export-ggml",
    "push",
    "transcribe",
    "serve",
    "gui",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whisper-tune",
        description=(
            "Fine-tune OpenAI Whisper with LoRA/AdaLoRA, merge, evaluate (CER/WER), convert to "
            "CTranslate2 or GGML, and transcribe, serve or run a desktop app. "
            "Run 'whisper-tune demo' for the whole path on the bundled model."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"whisper-tune {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_")
    ]
    order = {name: i for i, name in enumerate(_PIPELINE_ORDER)}
    for module in sorted(modules, key=lambda m: (order.get(m.COMMAND, 99), m.COMMAND)):
        sub = subparsers.add_parser(
            module.COMMAND,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    # transformers' generation chatter (deprecations, length notices) is not for end users
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        raise SystemExit(2)
    try:
        result = args.run(args)
    except WhisperTuneError as exc:
        print(f"whisper-tune {args.command}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(f"whisper-tune {args.command}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(result or 0)
