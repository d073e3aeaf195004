"""A container's typed fields as command-line options and YAML config keys.

argparse reads the option strings; pydantic converts and validates them
against the field types, so ``--lr 1e-3``, ``--folds 3`` or ``--flag`` (a
boolean alone means true) all end up with the declared type. Values for list,
dict and tuple fields are read as YAML/JSON (``--sizes "[32, 64]"``).
A YAML config file supplies defaults that the command line overrides.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from himl_kernel.argparsing import HimlArgumentParser
from himl_kernel.errors import HimlError


def _is_bool(annotation: Any) -> bool:
    if annotation is bool:
        return True
    return bool(
        get_origin(annotation) in (typing.Union, types.UnionType) and set(get_args(annotation)) == {bool, type(None)}
    )


def _is_plain_string(annotation: Any) -> bool:
    if annotation in (str, Path):
        return True
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return all(a in (str, Path, type(None)) for a in get_args(annotation))
    return get_origin(annotation) is typing.Literal and all(isinstance(a, str) for a in get_args(annotation))


def field_options(model: type[BaseModel]) -> dict[str, str]:
    """Option string -> field name, for every field of ``model``."""
    return {f"--{name}": name for name in model.model_fields}


def build_parser(model: type[BaseModel], prog: str) -> argparse.ArgumentParser:
    parser = HimlArgumentParser(
        prog=prog, add_help=True, description=(model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else None
    )
    for name, info in model.model_fields.items():
        default = info.default if not info.is_required() else "(required)"
        help_text = f"{info.description or ''} (default: {default!r})".strip()
        if _is_bool(info.annotation):
            parser.add_argument(
                f"--{name}",
                dest=name,
                nargs="?",
                const="true",
                default=argparse.SUPPRESS,
                metavar="BOOL",
                help=help_text,
            )
        else:
            parser.add_argument(f"--{name}", dest=name, default=argparse.SUPPRESS, metavar=name.upper(), help=help_text)
    return parser


def _convert(model: type[BaseModel], name: str, raw: str) -> Any:
    annotation = model.model_fields[name].annotation
    if raw.strip().lower() in ("none", "null") and not _is_plain_string(annotation):
        return None
    if _is_plain_string(annotation) or _is_bool(annotation):
        return raw
    if _is_one_of(annotation, (list, dict, tuple, set)):
        import yaml

        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise HimlError(f"--{name}: {raw!r} is not valid YAML/JSON ({exc.__class__.__name__})") from None
        if _is_one_of(annotation, (list, tuple, set)) and not isinstance(value, (list, dict)) and value is not None:
            # a bare value, or a comma-separated few, for a list: --local_datasets /data/a,/data/b
            return [part.strip() for part in raw.split(",")] if "," in raw else [value]
        return value
    return raw


def _is_one_of(annotation: Any, kinds: tuple[type, ...]) -> bool:
    """Whether the field's type is one of ``kinds`` (``list[int]`` is a list), alone or in a union."""
    members = get_args(annotation) if get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    return any((get_origin(a) or a) in kinds for a in members)


def load_config_file(path: Path) -> dict[str, Any]:
    """Field values from a YAML file (a mapping of field name to value)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise HimlError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise HimlError(f"config file {str(path)!r} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HimlError(
            f"config file {str(path)!r} must hold a mapping of field names to values, got {type(data).__name__}"
        )
    return data


def validation_message(model: type[BaseModel], exc: ValidationError, origin: str) -> str:
    """One line for a pydantic ValidationError, naming the field and what was expected."""
    problems = []
    known = ", ".join(model.model_fields)
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(model)"
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown field {loc!r} (known fields: {known})")
        else:
            value = err.get("input")
            shown = f" (got {value!r})" if not isinstance(value, (dict, BaseModel)) else ""
            problems.append(f"{loc}: {err['msg']}{shown}")
    return f"{origin}: " + "; ".join(problems)


def parse_fields(
    model: type[BaseModel], argv: list[str], *, config_file: Path | None = None, prog: str = "himl run"
) -> Any:
    """An instance of ``model`` from a config file and command-line arguments."""
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(load_config_file(config_file))
        try:
            model.model_validate(values)
        except ValidationError as exc:
            raise HimlError(
                validation_message(model, exc, f"config file {str(config_file)!r} for {model.__name__}")
            ) from None
    parser = build_parser(model, prog)
    namespace = parser.parse_args(argv)
    for name, raw in vars(namespace).items():
        values[name] = _convert(model, name, raw)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise HimlError(validation_message(model, exc, model.__name__)) from None


def non_default_arguments(instance: BaseModel, exclude: set[str] | None = None) -> list[str]:
    """``--name value`` for every field set away from its default, to rebuild ``instance`` elsewhere."""
    from himl_kernel.sweep import format_cli_value

    args: list[str] = []
    for name, info in type(instance).model_fields.items():
        if exclude and name in exclude:
            continue
        value = getattr(instance, name)
        if not info.is_required() and value == info.default:
            continue
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        elif isinstance(value, Path):
            value = str(value)
        if value is None:
            args += [f"--{name}", "none"]
        else:
            args += [f"--{name}", format_cli_value(value)]
    return args
