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
