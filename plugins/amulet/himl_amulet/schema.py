"""The Amulet configuration this plugin writes, as a pydantic schema it owns.

It covers what :mod:`himl_amulet.config` writes (a subset of what ``amlt``
reads): ``description``, ``target``, ``environment``, ``code``, ``storage``,
``env_defaults``, ``jobs`` and ``search``. :func:`validate_config` checks a
document against it and answers a bad value in one line naming the field
(``jobs[0].sku``), so neither a written ``amlt.yaml`` nor a hand-edited one
reaches ``amlt`` with an impossible sku or an unknown SLA tier.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from himl_kernel.errors import HimlError

SlaTier = Literal["basic", "standard", "premium"]
Priority = Literal["low", "medium", "high"]
Service = Literal["sing", "aml", "amlk8s"]
SearchType = Literal["grid", "random"]

#: ``[NODESx][MEMG](G|C)COUNT[-KIND]``: ``G1``, ``C4``, ``2xG8``, ``32G4``, ``2x32G8-V100``, after ``${VAR}`` expansion.
_SKU = re.compile(r"^(?:(?P<nodes>\d+)x)?(?P<mem>\d+)?(?P<kind>[GC])(?P<count>\d+)(?:-[A-Za-z0-9]+)?$")
_VARIABLE = re.compile(r"\$\{(\w+)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Target(_Strict):
    """Where the jobs run: the Amulet service, the target (virtual cluster) name, its workspace."""

    service: Service = "sing"
    name: str = Field(min_length=1)
    workspace_name: str | None = None


class Environment(_Strict):
    """The image and the software set up in it."""

    image: str = Field(min_length=1)
    conda_yaml_file: str | None = None
    setup: list[str] | None = None
    registry: str | None = None


class Code(_Strict):
    local_dir: str = Field(min_length=1)


class Storage(_Strict):
    """A blob container mounted into every job at ``mount_dir``."""

    storage_account_name: str = Field(min_length=1)
    container_name: str = Field(min_length=1)
    mount_dir: str = Field(pattern=r"^/")


class SubmitArgs(_Strict):
    env: dict[str, str] = Field(default_factory=dict)


class Job(_Strict):
    """One job of the ``jobs`` list (or a search's ``job_template``)."""

    name: str = Field(min_length=1)
    sku: str = Field(min_length=1)
    command: list[str] = Field(min_length=1)
    process_count_per_node: int | str | None = None
    sla_tier: SlaTier | None = None
    priority: Priority | None = None
    preemptible: bool | None = None
    submit_args: SubmitArgs | None = None

    @field_validator("process_count_per_node")
    @classmethod
    def _count(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 0:
            raise ValueError("must be 0 (the job starts its own processes) or more")
        if isinstance(value, str) and not _VARIABLE.fullmatch(value.strip()):
            raise ValueError("must be a number or one ${VARIABLE} of env_defaults")
        return value


class SearchParam(_Strict):
    name: str = Field(pattern=r"^\w+$")
    spec: Literal["discrete"] = "discrete"
    values: list[int | float | str | bool] = Field(min_length=1)


class Search(_Strict):
    """A grid of trials, each a copy of ``job_template`` with ``{name}`` replaced in its command."""

    job_template: Job
    type: SearchType = "grid"
    max_trials: int | None = Field(default=None, ge=1)
    parallel_trials: int | None = Field(default=None, ge=1)
    params: list[SearchParam] = Field(min_length=1)

    @model_validator(mode="after")
    def _placeholders(self) -> Search:
        text = " ".join(self.job_template.command)
        for param in self.params:
            if "{" + param.name + "}" not in text:
                raise ValueError(f"parameter {param.name!r} does not appear as {{{param.name}}} in the command")
        return self


class AmuletConfig(_Strict):
    """The whole document, ``amlt run`` reads it."""

    description: str = ""
    target: Target
    environment: Environment
    code: Code
    storage: dict[str, Storage] | None = None
    env_defaults: dict[str, int | str] | None = None
    jobs: list[Job] | None = None
    search: Search | None = None

    @model_validator(mode="after")
    def _jobs_and_skus(self) -> AmuletConfig:
        if bool(self.jobs) == (self.search is not None):
            raise ValueError("give either a non-empty jobs list or a search section, not both")
        defaults = {str(k): str(v) for k, v in (self.env_defaults or {}).items()}
        named = [(f"jobs[{i}]", job) for i, job in enumerate(self.jobs or [])]
        if self.search is not None:
            named.append(("search.job_template", self.search.job_template))
        for where, job in named:
            check_sku(job.sku, defaults, f"{where}.sku")
            count = job.process_count_per_node
            if isinstance(count, str):
                _expand(count, defaults, f"{where}.process_count_per_node")
        names = [job.name for job in self.jobs or []]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"job names must be unique, repeated: {', '.join(repeated)}")
        return self


class SkuError(ValueError):
    """A sku that names no machine Amulet can give."""


def _expand(text: str, defaults: dict[str, str], where: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in defaults:
            raise SkuError(f"{where}: ${{{name}}} is not in env_defaults")
        return defaults[name]

    return _VARIABLE.sub(value, text)


def check_sku(sku: str, defaults: dict[str, str], where: str = "sku") -> tuple[int, str, int]:
    """``(nodes, "G" or "C", count)`` of ``sku`` once ``${VAR}`` is expanded from ``defaults``."""
    expanded = _expand(sku, defaults, where)
    match = _SKU.match(expanded)
    if not match:
        raise SkuError(
            f"{where}: {sku!r} is not an Amulet sku; expected e.g. G1, C4, 2xG8, 32G4 or ${{NODES}}x${{MEM}}G${{GPUS}}"
        )
    nodes, count = int(match.group("nodes") or 1), int(match.group("count"))
    if nodes < 1 or count < 1 or (match.group("mem") is not None and int(match.group("mem")) < 1):
        raise SkuError(f"{where}: {sku!r} asks for zero nodes, memory or devices")
    return nodes, match.group("kind"), count


def validate_config(data: Any, source: str = "the Amulet configuration") -> AmuletConfig:
    """``data`` (a loaded YAML document) as an :class:`AmuletConfig`; a one-line HimlError naming the field."""
    if not isinstance(data, dict):
        raise HimlError(f"{source}: expected a mapping at the top, got {type(data).__name__}")
    try:
        return AmuletConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = _where(error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if where:
            shown = error.get("input")
            given = f" (got {shown!r})" if isinstance(shown, str | int | float | bool) else ""
            raise HimlError(f"{source}: {where}: {message}{given}") from None
        raise HimlError(f"{source}: {message}") from None


def _where(loc: tuple[int | str, ...] | Any) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
