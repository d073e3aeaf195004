"""Round trip of every registered container: field values -> command line (and config.yaml) -> an equal container.

The values are drawn by hypothesis from each field's annotation and
constraints, so nested models, lists, tuples, dicts, Optional, Literal, Enum,
Path and ``int | str`` fields are all exercised; the containers are every one
the installed plugins register, the test models of the azure_v2 tests, and
:class:`EveryKind` here, which has one field of each kind.
"""

from __future__ import annotations

import enum
import math
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from himl_kernel.container import Container, CrossValidation
from himl_kernel.errors import HimlError
from himl_kernel.fields import config_text, non_default_arguments, parse_fields
from himl_kernel.plugins import build_host


class Colour(enum.Enum):
    RED = "red"
    DARK_BLUE = "dark-blue"  # a name that is not its value


class Schedule(BaseModel):
    """A nested model with a nested model in it."""

    class Warmup(BaseModel):
        epochs: int = Field(0, ge=0)
        start: float = 0.1

    gamma: float = 0.5
    milestones: list[int] = Field(default_factory=list)
    name: str | None = None
    warmup: Warmup = Field(default_factory=Warmup)


class Simple(BaseModel):
    """A nested model jsonargparse reads exactly (dotted options)."""

    width: int = 3
    label: str = "w"


class Kinds(BaseModel):
    """The mixin: declares some fields, so the help groups them under this class."""

    ratio: float = Field(0.5, ge=0, le=1, description="a bounded float")
    words: list[str] = Field(default_factory=lambda: ["a"], description="a list of strings")


class EveryKind(Kinds, CrossValidation, Container):
    """One field of each kind that a container may have."""

    count: int = Field(3, ge=0)
    rate: float = 1e-3
    text: str = "x"
    flag: bool = False
    maybe_flag: bool | None = None
    sizes: list[int] = Field(default_factory=lambda: [32])
    folders: list[Path] = Field(default_factory=list)
    betas: tuple[float, float] = (0.9, 0.999)
    shape: tuple[int, ...] = ()
    mapping: dict[str, int] = Field(default_factory=dict)
    mixed_map: dict[str, int | str] = Field(default_factory=dict)
    limit: int | None = None
    fraction: int | float | None = None
    weights: str | None = None
    checkpoint: Path | None = None
    choice: Literal["adam", "sgd", "none"] = "adam"
    level: Literal[0, 1, 2] = 0
    colour: Colour = Colour.RED
    colours: list[Colour] = Field(default_factory=list)
    path: Path = Path("data")
    id_or_name: int | str = 0
    ids: list[int | str] = Field(default_factory=list)
    schedule: Schedule = Field(default_factory=Schedule)
    simple: Simple = Field(default_factory=Simple)
    required_seed: int

    def run(self, run_info: Any) -> None:
        pass


# -- strategies from annotations ---------------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
#: Strings that YAML, JSON or argparse would read as something else if written bare.
AWKWARD_TEXT = [
    "1", "0E0", "1e3", "0x10", "1_000", ".inf", "null", "none", "None", "~", "true", "yes", "on", "2026-01-01",
    "-x", "--x", "[1]", "{a: 1}", "a: b", "# c", "&x", "*x", "!tag", "'a'", '"a"', "a,b", " ", "", "\u2028",
]  # fmt: skip


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            bounds["ge"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            bounds["gt"] = item.gt
        elif isinstance(item, annotated_types.Le):
            bounds["le"] = item.le
        elif isinstance(item, annotated_types.Lt):
            bounds["lt"] = item.lt
    return bounds


def strategy_for(annotation: Any, metadata: list[Any] | None = None) -> st.SearchStrategy[Any]:
    """Values of ``annotation`` (with the field's ge/gt/le/lt), including the awkward ones."""
    metadata = list(metadata or [])
    while get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        metadata += extra
    bounds = _bounds(metadata)
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([strategy_for(a, metadata) for a in get_args(annotation)])
    if annotation is type(None):
        return st.none()
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        low = bounds.get("ge", bounds["gt"] + 1 if "gt" in bounds else None)
        high = bounds.get("le", bounds["lt"] - 1 if "lt" in bounds else None)
        return st.integers(min_value=low, max_value=high)
    if annotation is float:
        low = bounds.get("ge", bounds.get("gt"))
        high = bounds.get("le", bounds.get("lt"))
        return st.floats(
            min_value=low,
            max_value=high,
            exclude_min="gt" in bounds,
            exclude_max="lt" in bounds,
            allow_nan=False,  # nan equals nothing, not even itself
            allow_infinity=low is None or high is None,
        )
    if annotation is str:
        return st.one_of(TEXT, st.sampled_from(AWKWARD_TEXT))
    if annotation is Path:
        return st.one_of(TEXT, st.sampled_from(["/data/a", *AWKWARD_TEXT])).map(Path)
    if origin is Literal:
        return st.sampled_from(get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return st.sampled_from(list(annotation))
    if origin is list:
        return st.lists(strategy_for(get_args(annotation)[0]), max_size=3)
    if origin is tuple:
        args = get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy_for(args[0]), max_size=3).map(tuple)
        return st.tuples(*(strategy_for(a) for a in args))
    if origin is dict:
        key, value = get_args(annotation)
        return st.dictionaries(strategy_for(key), strategy_for(value), max_size=3)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_values(annotation).map(annotation.model_validate)
    raise AssertionError(f"no strategy for {annotation!r}: teach strategy_for this type")


def model_values(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """Field values for ``model``: each field keeps its default or takes a drawn value."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        drawn = strategy_for(info.annotation, info.metadata)
        if info.is_required():
            fields[name] = drawn
        else:
            fields[name] = st.one_of(st.just(info.get_default(call_default_factory=True)), drawn)
    return st.fixed_dictionaries(fields)


def registered_containers() -> dict[str, type[Container]]:
    from tests.azure_v2.models import TwoInputsCV

    host = build_host()
    found: dict[str, type[Container]] = {name: host.containers.get(name) for name in host.containers.names()}
    found["TwoInputsCV"] = TwoInputsCV
    found["EveryKind"] = EveryKind
    return found


CONTAINERS = registered_containers()


def test_every_installed_plugin_container_is_covered() -> None:
    assert {"HelloWorld", "PlainHelloWorld", "DeepMIL", "TcgaCrckImageNetMIL", "PandaSSLMIL"} <= set(CONTAINERS)


def _typed(value: Any) -> Any:
    """A value with its types spelled out, so 1, 1.0 and True (equal in Python) stay apart."""
    if isinstance(value, BaseModel):
        return (type(value).__name__, {k: _typed(getattr(value, k)) for k in type(value).model_fields})
    if isinstance(value, dict):
        return {_typed(k): _typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_typed(v) for v in value])
    if isinstance(value, float) and math.isinf(value):
        return ("float", str(value))
    return (type(value).__name__, value)


def _assert_round_trip(model: type[Container], values: dict[str, Any], tmp_path: Path) -> None:
    try:
        original = model.model_validate(values)
    except (ValidationError, ValueError, HimlError):
        assume(False)  # a combination the model's own validators refuse is no valid container
        return
    args = non_default_arguments(original)
    rebuilt = parse_fields(model, args)
    assert _typed(rebuilt) == _typed(original), args
    config = tmp_path / "config.yaml"
    config.write_text(config_text(original), encoding="utf-8")
    from_config = parse_fields(model, [], config_file=config)
    assert _typed(from_config) == _typed(original), config.read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_field_values_survive_the_command_line_and_the_config_file(name: str, tmp_path_factory: Any) -> None:
    model = CONTAINERS[name]
    tmp_path = tmp_path_factory.mktemp(name)

    @settings(
        max_examples=150 if name == "EveryKind" else 40,
        deadline=None,
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    )
    @given(values=model_values(model))
    def round_trip(values: dict[str, Any]) -> None:
        _assert_round_trip(model, values, tmp_path)

    round_trip()


def test_the_awkward_values_each_survive(tmp_path: Path) -> None:
    """The cases a library reads differently from what was meant, spelled out (fast, not slow)."""
    awkward = {
        "required_seed": -5,
        "text": "-x",
        "weights": "none",
        "checkpoint": Path("null"),
        "id_or_name": "1",
        "ids": ["1", 2, "null"],
        "mixed_map": {"a": "2", "b": 2},
        "choice": "none",
        "colour": Colour.DARK_BLUE,
        "colours": [Colour.DARK_BLUE, Colour.RED],
        "fraction": 1.0,
        "rate": float("inf"),
        "betas": (0.5, -0.25),
        "shape": (1, 2),
        "schedule": Schedule(name="null", milestones=[3], warmup=Schedule.Warmup(epochs=2)),
        "simple": Simple(width=7, label="123"),
        "words": [],
        "maybe_flag": False,
    }
    _assert_round_trip(EveryKind, awkward, tmp_path)
    args = non_default_arguments(EveryKind.model_validate(awkward))
    assert "--text=-x" in args and "--required_seed=-5" in args
    assert args[args.index("--id_or_name") + 1] == '"1"'  # the string, quoted; a bare 1 is the number
    assert parse_fields(EveryKind, ["--required_seed", "0", "--id_or_name", "1"]).id_or_name == 1


@pytest.mark.parametrize("name", ["HelloWorld", "PlainHelloWorld", "DeepMIL", "TwoInputsCV"])
def test_each_sweep_child_rebuilds_from_the_parent_arguments_and_its_trial(name: str) -> None:
    """What a child run receives: the parent's non-default arguments, then its trial's ``--name value``."""
    from himl_kernel.sweep import trial_arguments

    model = CONTAINERS[name]
    extra: dict[str, Any] = {"different_seeds": 2, "random_seed": 7} if "different_seeds" in model.model_fields else {}
    parent = model.model_validate({"crossval_count": 3, **extra})
    sweep = parent.get_sweep()
    assert sweep is not None
    trials = sweep.trials()
    assert len(trials) == 3 * (2 if extra else 1)
    for trial in trials:
        child = parse_fields(model, non_default_arguments(parent) + trial_arguments(trial))
        assert _typed(child) == _typed(parent.model_copy(update=trial)), trial
        assert child.get_sweep() is None or "different_seeds" in model.model_fields
