"""A container's typed fields as command-line options and YAML config keys, from one definition.

The pydantic model is the one definition. jsonargparse (the parser under
LightningCLI) turns it into ``himl run --model NAME`` options: typed
conversion, dotted options for nested models (``--optim.lr 1e-3``), help with
each field's type and default. pydantic then validates the whole, so a
field's constraints (``ge=1``) and the model's validators apply to options,
config files and code alike.

Why jsonargparse and not pydantic-settings' CLI source: both were tried
against the round trip this module promises (values -> ``non_default_arguments``
-> parse -> an equal container). pydantic-settings read ``null`` as None even
for a plain ``str`` field, turned ``["1", 2]`` into ``["1", "2"]`` for a
``list[int | str]``, refused ``tuple[int, str]`` given as JSON, refused
``--flag false`` once bare ``--flag`` was allowed, and made a one-letter
field a one-dash option. jsonargparse kept strings as strings, read JSON and
YAML values, and accepted ``--flag``, ``--flag true`` and ``--flag false``;
it loses only one thing: which text is a string in a type that admits a
string *and* something else (``int | str``, ``str | None``, ``list[int | str]``,
enums). For those fields, and only those, the option's text is read as a
YAML value and handed to pydantic, which keeps ``"1"`` and ``1`` apart; a
string that would read as something else is written in double quotes
(``--encoder_weights '"none"'``). See :func:`read_exactly`.

Conveniences on top of the library, because hi-ml users rely on them:

- a bare ``--flag`` for a bool means true (``--flag false`` works too);
- a list, tuple or set option takes a bare value or a comma list
  (``--local_datasets /data/a,/data/b``) besides YAML/JSON (``[/data/a, /data/b]``);
- ``none`` or ``null`` (any case) is None for an Optional field.

A YAML config file (``--config``) holds field names and values, in the form
:func:`config_text` writes, and gives defaults that options override.
jsonargparse is imported only when a parser is built, never at ``himl --help``.
"""

from __future__ import annotations

import argparse
import difflib
import enum
import functools
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin

from pydantic import BaseModel, PydanticSchemaGenerationError, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from jsonargparse import ArgumentParser

_NONE_WORDS = ("none", "null")
_LISTS = (list, tuple, set, frozenset)


# -- what a field's type is ---------------------------------------------------------------------------------------


def _bare(annotation: Any) -> Any:
    """The type without ``Annotated[...]`` metadata."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _members(annotation: Any) -> tuple[Any, ...]:
    """The members of a union (``int | None`` -> ``(int, NoneType)``), else the type alone."""
    annotation = _bare(annotation)
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(_bare(a) for a in get_args(annotation))
    return (annotation,)


def _admits_none(annotation: Any) -> bool:
    return any(m is type(None) for m in _members(annotation))


def _is_model(annotation: Any) -> bool:
    annotation = _bare(annotation)
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_listlike(annotation: Any) -> bool:
    return any((get_origin(m) or m) in _LISTS for m in _members(annotation))


def _is_bool(annotation: Any) -> bool:
    return {m for m in _members(annotation) if m is not type(None)} == {bool}


def _is_text(annotation: Any) -> bool:
    """Whether a value of this (non-union) type may be written as free text."""
    if annotation in (str, Path) or (isinstance(annotation, type) and issubclass(annotation, (str, Path))):
        return True
    return get_origin(annotation) is typing.Literal and any(isinstance(a, str) for a in get_args(annotation))


def _items(annotation: Any) -> tuple[Any, ...]:
    """The item types of a list, tuple, set or dict type."""
    args = tuple(a for a in get_args(_bare(annotation)) if a is not Ellipsis)
    return args


def read_exactly(annotation: Any) -> bool:
    """Whether jsonargparse reads every value of this type back exactly from the text we write.

    It does for ``int``, ``float``, ``bool``, ``str``, ``Path``, one-kind
    ``Literal`` types, ``X | None`` where X is not text, and lists, tuples,
    dicts and nested models made of those. It does not where a string meets
    another type in a union (``"1"`` in ``int | str`` becomes 1, ``"null"`` in
    ``str | None`` becomes None), for enums (it reads names, pydantic values),
    and for types it does not know; such fields are read as YAML by pydantic.
    """
    annotation = _bare(annotation)
    members = _members(annotation)
    if len(members) > 1:
        others = [m for m in members if m is not type(None)]
        if len(others) > 1 and any(_is_text(m) or not _is_scalar(m) for m in others):
            return False
        if any(_is_text(m) for m in others) and len(others) < len(members):
            return False  # str | None: "null" would be None
        return all(read_exactly(m) for m in others)
    if annotation in (int, float, bool, str, Path):
        return True
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return False
    origin = get_origin(annotation)
    if origin is typing.Literal:
        kinds = {type(a) for a in get_args(annotation)}
        return len(kinds) == 1 and kinds <= {str, int}
    if origin is dict and _items(annotation)[:1] != (str,):
        return False  # JSON keys are strings: other key types are pydantic's to convert
    if origin in (*_LISTS, dict):
        return all(read_exactly(a) for a in _items(annotation))
    if _is_model(annotation):
        return all(read_exactly(info.annotation) for info in annotation.model_fields.values())
    return False


def _is_scalar(annotation: Any) -> bool:
    return annotation in (int, float, bool)


def type_name(annotation: Any) -> str:
    """How a field's type reads in help: ``int | None``, ``list[Path]``, ``Literal['a', 'b']``."""
    annotation = _bare(annotation)
    members = _members(annotation)
    if len(members) > 1:
        return " | ".join("None" if m is type(None) else type_name(m) for m in members)
    origin = get_origin(annotation)
    if origin is typing.Literal:
        return "{" + ",".join(str(a) for a in get_args(annotation)) + "}"
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join('...' if a is Ellipsis else type_name(a) for a in get_args(annotation))}]"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "{" + ",".join(str(m.value) for m in annotation) + "}"
    return getattr(annotation, "__name__", str(annotation))


# -- values as text --------------------------------------------------------------------------------------------------


def _flow_yaml(value: Any) -> str:
    """A JSON-mode value as one line of YAML (flow style) that any YAML reader reads back as this value.

    Strings are always double-quoted (``"0E0"`` stays a string whichever YAML
    resolver reads it), floats are exact (``repr``; ``.inf`` for infinity).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_quoted(str(k))}: {_flow_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow_yaml(v) for v in value) + "]"
    raise HimlError(f"cannot write {type(value).__name__} value {value!r} on a command line")


def _quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar: escapes for quotes, backslashes and what YAML would not keep."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0 or code in (0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF):
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            raise HimlError(f"cannot write the lone surrogate {char!r} on a command line")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _reads_as_itself(text: str) -> bool:
    """Whether YAML reads ``text`` back as the same string (so it needs no quotes)."""
    import yaml

    if not text or text != text.strip() or text.lower() in _NONE_WORDS:
        return False
    try:
        return bool(yaml.safe_load(text) == text)
    except yaml.YAMLError:
        return False


def cli_text(annotation: Any, value: Any) -> str:
    """The option text that parses back to ``value`` for a field of this type."""
    dumped = TypeAdapter(annotation).dump_python(value, mode="json")
    if isinstance(dumped, str):
        if read_exactly(annotation) or _reads_as_itself(dumped):
            return dumped
        return json.dumps(dumped, ensure_ascii=False)  # a JSON string: exactly this string
    return _flow_yaml(dumped)


def _decode_yaml_value(annotation: Any, raw: str) -> Any:
    """A value for a field jsonargparse cannot read exactly: YAML, checked by pydantic; else the text itself."""
    import yaml

    if raw.strip().lower() in _NONE_WORDS and _admits_none(annotation):
        return None
    if raw.startswith('"'):  # a string in double quotes, as cli_text writes one: exactly that string
        try:
            quoted = json.loads(raw)
        except ValueError:
            quoted = None
        if isinstance(quoted, str):
            return quoted
    try:
        decoded = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(decoded, str):  # text stays as typed (spaces, '#'), unless it was given in quotes
        return decoded if raw.lstrip()[:1] in ("'", '"') else raw
    try:
        TypeAdapter(annotation).validate_python(decoded)
    except ValidationError:
        return raw if _is_text_somewhere(annotation) else decoded  # let pydantic name what is wrong
    return decoded


def _is_text_somewhere(annotation: Any) -> bool:
    return any(_is_text(m) for m in _members(annotation))


def _list_from_text(annotation: Any, raw: str) -> str:
    """A bare value or a comma list for a list option, as the YAML list jsonargparse reads."""
    text = raw.strip()
    if text.startswith("[") or text.lower() in _NONE_WORDS:
        return raw
    import yaml

    items = [m for m in _members(annotation) if (get_origin(m) or m) in _LISTS]
    item_types = _items(items[0]) if items else ()
    textual = bool(item_types) and all(_is_text_somewhere(t) for t in item_types)
    parts = [part.strip() for part in text.split(",")] if "," in text else [text]
    if textual:
        return json.dumps(parts, ensure_ascii=False)
    values: list[Any] = []
    for part in parts:
        try:
            values.append(yaml.safe_load(part))
        except yaml.YAMLError:
            values.append(part)
    return _flow_yaml(values)


# -- the parser ------------------------------------------------------------------------------------------------------


def declaring_class(model: type[BaseModel], name: str) -> type:
    """The class in ``model``'s hierarchy whose body declares field ``name`` (the last to override it)."""
    for cls in model.__mro__:
        if name in inspect.get_annotations(cls):
            return cls
    return model


def field_options(model: type[BaseModel]) -> dict[str, str]:
    """Option string -> field name, for every field of ``model`` (nested models' dotted options included)."""
    options = {f"--{name}": name for name in model.model_fields}
    for name, info in model.model_fields.items():
        if _is_model(info.annotation) and read_exactly(info.annotation):
            for option in field_options(_bare(info.annotation)):
                options[f"--{name}.{option[2:]}"] = name
    return options


def _default_text(info: Any) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    try:
        return cli_text(info.annotation, value) or '""'
    except Exception:  # a default pydantic cannot dump (arbitrary types): its repr
        return repr(value)


def _help_formatter() -> type[argparse.HelpFormatter]:
    from jsonargparse import DefaultHelpFormatter

    class FieldHelpFormatter(DefaultHelpFormatter):
        """Help lines ``description (type: T, default: D)`` with the type and default as the model says."""

        def _get_help_string(self, action: argparse.Action) -> str:
            if getattr(action, "himl_help", False):
                return action.help or ""
            return super()._get_help_string(action)

    return FieldHelpFormatter


@functools.lru_cache(maxsize=64)
def _cached_parser(model: type[BaseModel], prog: str) -> ArgumentParser:
    from jsonargparse import ArgumentParser

    description = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else None
    parser = ArgumentParser(
        prog=prog,
        description=description,
        exit_on_error=False,
        formatter_class=_help_formatter(),
        add_help=True,
        allow_abbrev=False,  # --max_epoch is a typo, not --max_epochs
        default_env=False,  # fields come from the command line and --config only, never from JSONARGPARSE_* settings
    )
    groups: dict[type, Any] = {}
    for name, info in model.model_fields.items():
        owner = declaring_class(model, name)
        if owner not in groups:
            doc = (owner.__doc__ or "").strip().splitlines()
            groups[owner] = parser.add_argument_group(f"{owner.__name__} fields", doc[0] if doc else None)
        group = groups[owner]
        annotation = info.annotation
        default = "required" if info.is_required() else f"default: {_default_text(info)}"
        help_text = f"{info.description or ''} ({default})".strip().replace("%", "%%")
        if _is_model(annotation) and read_exactly(annotation):
            # jsonargparse adds --name (a mapping or a YAML file) and a dotted option per nested field,
            # in a group of their own whose title is this help
            doc = (_bare(annotation).__doc__ or "").strip().splitlines()
            title = info.description or (doc[0] if doc else type_name(annotation))
            group.add_argument(f"--{name}", type=annotation, help=f"{owner.__name__}.{name}: {title}")
            continue
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text}
        if not read_exactly(annotation):
            kwargs.update(type=str, metavar=type_name(annotation).replace(" ", ""))
        elif _is_bool(annotation):
            kwargs.update(type=annotation, nargs="?", const=True, metavar="BOOL")
        else:
            kwargs.update(type=annotation, metavar=type_name(annotation).replace(" ", ""))
        action = group.add_argument(f"--{name}", **kwargs)
        action.himl_help = True  # our help line as it stands: the formatter adds nothing
    return parser


def build_parser(model: type[BaseModel], prog: str) -> ArgumentParser:
    """The jsonargparse parser of ``model``'s fields: one group per class that declares fields."""
    return _cached_parser(model, prog)


def _prepare(model: type[BaseModel], argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Apply the conveniences (comma lists, ``none``) and set aside the options pydantic reads itself."""
    fields = model.model_fields
    out: list[str] = []
    by_yaml: dict[str, str] = {}
    index = 0
    while index < len(argv):
        arg = argv[index]
        name, sep, inline = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        info = fields.get(name)
        if info is None:
            out.append(arg)
            index += 1
            continue
        if not sep and _is_bool(info.annotation):
            # a bare --flag means true; --flag true / --flag false take their value
            following = argv[index + 1] if index + 1 < len(argv) else ""
            if following.lower() in ("true", "false"):
                out.append(f"--{name}={following.lower()}")
                index += 2
            else:
                out.append(f"--{name}=true")
                index += 1
            continue
        if sep:
            raw, index = inline, index + 1
        elif index + 1 < len(argv):
            raw, index = argv[index + 1], index + 2
        else:
            out.append(arg)  # jsonargparse says the value is missing
            break
        annotation = info.annotation
        if not read_exactly(annotation):
            by_yaml[name] = raw
            continue
        if raw.strip().lower() in _NONE_WORDS and _admits_none(annotation):
            raw = "null"
        elif _is_listlike(annotation):
            raw = _list_from_text(annotation, raw)
        out.append(f"--{name}={raw}")
    return out, by_yaml


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _argument_error(model: type[BaseModel], exc: Exception, prog: str, argv: list[str]) -> HimlError:
    message = " ".join(str(exc).split())
    unknown = re.match(r"unrecognized arguments: (.*)", message, re.IGNORECASE)
    if unknown:
        first = unknown.group(1).split()[0].split("=")[0]
        close = difflib.get_close_matches(first, list(field_options(model)), n=1)
        hint = f" (did you mean {close[0]}?)" if close else f"; `{prog} --help` lists the fields"
        return HimlError(f"{prog}: unrecognized arguments: {unknown.group(1)}{hint}")
    key = re.search(r'Parser key "([^"]+)"', message)
    if key:
        name = key.group(1).split(".")[0]
        raw = _given_text(argv, key.group(1))
        info = model.model_fields.get(name)
        if info is not None and raw is not None:
            annotation: Any = info.annotation
            try:
                TypeAdapter(annotation).validate_python(
                    raw if _is_text_somewhere(annotation) else _decode_yaml_value(annotation, raw)
                )
            except ValidationError as error:
                first = error.errors()[0]
                return HimlError(f"{prog}: --{key.group(1)}: {first['msg']} (got {raw!r})")
        return HimlError(f"{prog}: --{key.group(1)}: {message.split(':', 1)[-1].strip()}")
    return HimlError(f"{prog}: {message}")


def _given_text(argv: list[str], key: str) -> str | None:
    option = f"--{key}"
    for index, arg in enumerate(argv):
        if arg == option and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(option + "="):
            return arg[len(option) + 1 :]
    return None


# -- config files ----------------------------------------------------------------------------------------------------


def load_config_file(path: Path) -> dict[str, Any]:
    """Field values from a YAML file (a mapping of field name to value)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise HimlError(f"config file {str(path)!r} does not exist")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise HimlError(f"config file {str(path)!r} is not UTF-8 text") from None
    except OSError as exc:
        raise HimlError(f"config file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
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


def config_values(instance: BaseModel) -> dict[str, Any]:
    """Every field of ``instance``, JSON-typed: what ``outputs/config.yaml`` holds."""
    values: dict[str, Any] = instance.model_dump(mode="json")
    return values


def config_text(instance: BaseModel) -> str:
    """``instance`` as the YAML that ``--config`` reads back to an equal instance."""
    import yaml

    header = f"# {type(instance).__name__}: every field, as `himl run --config` reads it\n"
    return header + yaml.safe_dump(config_values(instance), sort_keys=False, width=2**31 - 1)


def write_config(instance: BaseModel, path: Path) -> Path:
    """Write :func:`config_text` to ``path``, atomically (a reader never sees half of it)."""
    from himl_kernel.atomic import atomic_write_text

    return atomic_write_text(Path(path), config_text(instance))


# -- parsing ---------------------------------------------------------------------------------------------------------


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
            problems.append(f"{loc}: {' '.join(err['msg'].split())}{shown}")
    return f"{origin}: " + "; ".join(problems)


def parse_fields(
    model: type[BaseModel], argv: list[str], *, config_file: Path | None = None, prog: str = "himl run"
) -> Any:
    """An instance of ``model`` from a config file and command-line arguments (which win)."""
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(load_config_file(config_file))
        try:
            model.model_validate(values)
        except ValidationError as exc:
            raise HimlError(
                validation_message(model, exc, f"config file {str(config_file)!r} for {model.__name__}")
            ) from None
    prepared, by_yaml = _prepare(model, list(argv))
    parser = build_parser(model, prog)
    try:
        namespace = parser.parse_args(prepared, defaults=False)
    except (argparse.ArgumentError, TypeError, ValueError) as exc:
        raise _argument_error(model, exc, prog, prepared) from None
    given = namespace.as_dict()
    for name, raw in by_yaml.items():
        given[name] = _decode_yaml_value(model.model_fields[name].annotation, raw)
    values = _deep_merge(values, given)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise HimlError(validation_message(model, exc, model.__name__)) from None


def non_default_arguments(instance: BaseModel, exclude: set[str] | None = None) -> list[str]:
    """``--name value`` for every field set away from its default, to rebuild ``instance`` elsewhere.

    The text of each value is what :func:`parse_fields` reads back to the same
    value (cross-validation children, sweeps, dry runs and remote jobs get
    these); a value that starts with ``-`` is written ``--name=value``. A
    container whose ``__init__`` sets fields (hi-ml style) is compared with
    what its ``__init__`` sets, which the rebuilt container starts from.
    """
    from himl_kernel.container import effective_defaults

    defaults = effective_defaults(type(instance))
    args: list[str] = []
    for name, info in type(instance).model_fields.items():
        if exclude and name in exclude:
            continue
        value = getattr(instance, name)
        if name in defaults and _same(value, defaults[name]):
            continue
        try:
            text = cli_text(info.annotation, value)
        except (PydanticSerializationError, PydanticSchemaGenerationError):
            raise HimlError(
                f"field {name!r} of {type(instance).__name__} holds a {type(value).__name__}, which cannot be "
                "passed to a job on its command line"
            ) from None
        args += [f"--{name}={text}"] if text.startswith("-") else [f"--{name}", text]
    return args


def _same(value: Any, default: Any) -> bool:
    """Equal and of the same type (``1 == 1.0 == True``, but each parses back differently)."""
    try:
        return bool(type(value) is type(default) and value == default)
    except Exception:
        return False


def check_option_clashes(model: type[BaseModel], taken: Mapping[str, str], *, model_name: str = "") -> None:
    """Refuse a field whose option is already someone's: ``taken`` maps option strings to their owner.

    ``--num_nodes`` and ``--num-nodes`` count as the same option, so a field
    cannot shadow a kernel option that differs only in its separator.
    """

    def norm(option: str) -> str:
        return option.lstrip("-").replace("-", "_")

    owners = {norm(option): (option, owner) for option, owner in taken.items()}
    for option, field_name in field_options(model).items():
        hit = owners.get(norm(option))
        if hit is not None:
            where = declaring_class(model, field_name).__name__
            shown = f" (model {model_name})" if model_name and model_name != model.__name__ else ""
            raise HimlError(
                f"field {field_name!r} of {where}{shown} would be the option {option}, but {hit[0]} is {hit[1]}'s; "
                "rename the field"
            )
