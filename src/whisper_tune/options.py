"""Dataclass fields that carry their command-line help, so each option is declared once.

A config dataclass states every option (name, type, default, help); the CLI derives its
flags from the fields (``whisper_tune.cli._args.add_config_options``). Fields without help
are not options.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import MISSING, field
from typing import Any

from whisper_tune.errors import WhisperTuneError

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


def check_ranges(config: Any, **checks: bool) -> None:
    """Raise one error naming every option of ``config`` whose check is False."""
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        values = ", ".join(f"--{name} {getattr(config, name)}" for name in bad)
        raise WhisperTuneError(f"out of range: {values}")
