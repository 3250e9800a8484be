"""Dataclass fields that carry their command-line help, so each option is declared once.

A config dataclass states every option (name, type, default, help); the CLI derives its
flags from the fields (``whisper_tune.cli._args.add_config_options``). Fields without help
are not options.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import MISSING, field
from typing import Any

TASKS = ("transcribe", "translate")  # the decoder task: choices of every ``task`` option


def option(
    default: Any = MISSING,
    *,
    help: str,
    group: str | None = None,
    choices: Sequence[str] | None = None,
) -> Any:
    """A dataclass field that is also a command-line flag; no default: a required flag."""
    metadata = {"help": help, "group": group, "choices": choices}
    return field(default=default, metadata=metadata)
