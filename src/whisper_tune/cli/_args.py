"""Argument helpers: the seed's underscore names with dashed aliases, seed-style booleans."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from whisper_tune.engine_settings import EngineSettings

if typing.TYPE_CHECKING:
    from whisper_tune.inference.ray_runner import RaySettings

T = typing.TypeVar("T")


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


def add_config_options(
    parser: argparse.ArgumentParser,
    config: typing.Any,
    help: dict[str, str] | None = None,
    many: typing.Collection[str] = (),
) -> None:
    """One flag per field of the dataclass ``config`` (a class or an instance) that has help.

    Name, type, default, choices and argument group come from the field (see
    :func:`whisper_tune.options.option`), the default from ``config`` when it is an instance;
    ``help`` replaces a field's help text for this command; a field named in ``many`` takes
    one or more values for this command (a list). A field without a default is a required
    flag, a ``bool`` a seed-style boolean, a tuple one or more values.
    """
    cls = config if isinstance(config, type) else type(config)
    hints = typing.get_type_hints(cls)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for item in dataclasses.fields(cls):
        if "help" not in item.metadata:
            continue
        meta = item.metadata
        target = parser
        if meta["group"]:
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_argument_group(meta["group"])
            target = groups[meta["group"]]
        default = item.default if config is cls else getattr(config, item.name)
        text = (help or {}).get(item.name, meta["help"])
        kind = _value_type(hints[item.name])
        if item.name in many:
            kind, default = tuple[kind, ...], (default,)  # type: ignore[valid-type]
        _add_field(target, item.name, kind, default, text, meta)


def config_from_args(cls: type[T], args: argparse.Namespace, **values: typing.Any) -> T:
    """The dataclass ``cls`` filled from the flags :func:`add_config_options` declared (and
    ``values`` for fields that are not flags)."""
    values |= {
        item.name: getattr(args, item.name)
        for item in dataclasses.fields(cls)
        if "help" in item.metadata
    }
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if isinstance(value, list) and typing.get_origin(_value_type(hints[name])) is tuple:
            values[name] = tuple(value)
    return cls(**values)


def _value_type(hint: typing.Any) -> typing.Any:
    """``str | None`` → str; ``tuple[str, ...]`` stays a tuple type."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return hint


def _add_field(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    name: str,
    kind: typing.Any,
    default: typing.Any,
    help: str,
    meta: typing.Mapping[str, typing.Any],
) -> None:
    flag = f"--{name}"
    if kind is bool:
        add_bool(parser, flag, default, help)
        return
    kwargs: dict[str, typing.Any] = {"help": help, "choices": meta["choices"]}
    if default is dataclasses.MISSING:
        kwargs["required"] = True
    else:
        kwargs["default"] = default
    if typing.get_origin(kind) is tuple:
        kind = typing.get_args(kind)[0]
        kwargs.update(nargs="+", default=list(default))
    add(parser, flag, type=kind, **kwargs)


def add_model_options(
    parser: argparse.ArgumentParser,
    defaults: EngineSettings,
    num_workers_help: str,
    model_path_help: str | None = None,
) -> None:
    """The model flags of ``transcribe``, ``serve`` and ``gui``: :class:`EngineSettings`'
    fields (defaults: the command's ``defaults``), the seed's ``--use_gpu``, and its
    ``--beam_size`` and ``--vad_filter`` decoding flags. With ``model_path_help``,
    ``--model_path`` takes one or more models (the first is the default)."""
    texts = {"num_workers": num_workers_help}
    if model_path_help:
        texts["model_path"] = model_path_help
    many = ("model_path",) if model_path_help else ()
    add_config_options(parser, defaults, help=texts, many=many)
    add_bool(parser, "--use_gpu", defaults.device == "cuda", "run the model on a CUDA GPU")
    parser.add_argument(
        "--beam_size",
        "--beam-size",
        "--num_beams",
        "--num-beams",
        dest="beam_size",
        type=int,
        default=5,
        help="beam size (1 = greedy; --num_beams is the seed's infer_tfs.py name)",
    )
    add_bool(parser, "--vad_filter", False, "skip non-speech with the Silero VAD before decoding")


def engine_settings(args: argparse.Namespace) -> EngineSettings:
    """The :class:`EngineSettings` that :func:`add_model_options` flags describe (of the first
    model where ``--model_path`` took several)."""
    settings = config_from_args(EngineSettings, args, device="cuda" if args.use_gpu else "cpu")
    if isinstance(settings.model_path, list):
        return dataclasses.replace(settings, model_path=settings.model_path[0])
    return settings


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]`` and the actor pool's flags (:class:`RaySettings`' fields)."""
    from whisper_tune.inference.ray_runner import RaySettings

    group = parser.add_argument_group(
        "ray", "spread the files over a Ray cluster (pip install 'whisper-tune[ray]')"
    )
    add(
        group,
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on Ray: ADDRESS is the head's host:port or ray://host:port; alone, "
        "$RAY_ADDRESS, else the cluster `ray start` started on this machine, else a new local "
        "Ray. Resumable: a rerun skips the files its job log says are done (transcribe: the log "
        "is in --output_dir, which --ray needs; label: beside --output)",
    )
    add_config_options(group, RaySettings)


def ray_settings(args: argparse.Namespace) -> RaySettings | None:
    """The :class:`RaySettings` of :func:`add_ray_options`' flags; None without ``--ray``."""
    from whisper_tune.inference.ray_runner import RaySettings

    if args.ray is None:
        return None
    return config_from_args(RaySettings, args, address=args.ray or None)
