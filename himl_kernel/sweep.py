"""Hyperparameter sweeps: grid or random spaces, cross-validation folds, seeds.

A :class:`Sweep` is part of a :class:`~himl_kernel.job.JobSpec`. Each trial is
a dict of parameter values, passed to the job as ``--name value`` on its command
line. Cross-validation and multiple seeds are sweeps over one parameter.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from himl_kernel.errors import HimlError

Goal = Literal["minimize", "maximize"]
Sampling = Literal["grid", "random"]


@dataclass(frozen=True)
class Uniform:
    """A continuous range for random sampling; ``log`` samples on a log scale."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise HimlError(f"a uniform range needs low < high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise HimlError(f"a log-uniform range needs low > 0, got low={self.low}")

    def sample(self, rng: random.Random) -> float:
        if self.log:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "loguniform" if self.log else "uniform", "low": self.low, "high": self.high}


ParameterSpace = dict[str, "Sequence[Any] | Uniform"]


@dataclass
class Sweep:
    """A set of trials to run as child runs of one parent run.

    Attributes:
        parameters: parameter name to its values (a list; for random sampling,
            a :class:`Uniform` range is allowed too).
        sampling: ``grid`` runs every combination; ``random`` draws
            ``max_trials`` combinations.
        primary_metric: the metric that ranks trials (empty: none).
        goal: whether the primary metric should be minimised or maximised.
        max_trials: an upper bound on the number of trials (``None``: all of a grid).
        max_parallel: how many trials may run at once.
        seed: the seed of random sampling, so a sweep can be re-drawn identically.
    """

    parameters: dict[str, Any] = field(default_factory=dict)
    sampling: Sampling = "grid"
    primary_metric: str = ""
    goal: Goal = "minimize"
    max_trials: int | None = None
    max_parallel: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.parameters:
            raise HimlError("a sweep needs at least one parameter")
        if self.sampling not in ("grid", "random"):
            raise HimlError(f"sweep sampling must be 'grid' or 'random', got {self.sampling!r}")
        if self.goal not in ("minimize", "maximize"):
            raise HimlError(f"sweep goal must be 'minimize' or 'maximize', got {self.goal!r}")
        if self.max_parallel < 1:
            raise HimlError(f"max_parallel must be at least 1, got {self.max_parallel}")
        if self.max_trials is not None and self.max_trials < 1:
            raise HimlError(f"max_trials must be at least 1, got {self.max_trials}")
        for name, values in self.parameters.items():
            if isinstance(values, Uniform):
                if self.sampling == "grid":
                    raise HimlError(f"sweep parameter {name!r} is a range; a grid needs a list of values")
            elif isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
                raise HimlError(f"sweep parameter {name!r} needs a non-empty list of values, got {values!r}")
        if self.sampling == "random" and self.max_trials is None:
            raise HimlError("a random sweep needs max_trials")

    @classmethod
    def crossval(cls, folds: int, *, parameter: str = "crossval_index", **kwargs: Any) -> Sweep:
        """One trial per fold: ``parameter`` takes 0 .. folds-1."""
        if folds < 2:
            raise HimlError(f"cross-validation needs at least 2 folds, got {folds}")
        return cls(parameters={parameter: list(range(folds))}, **kwargs)

    @classmethod
    def seeds(cls, count: int, *, parameter: str = "random_seed", first: int = 0, **kwargs: Any) -> Sweep:
        """One trial per seed: ``parameter`` takes first .. first+count-1."""
        if count < 1:
            raise HimlError(f"a seed sweep needs at least 1 seed, got {count}")
        return cls(parameters={parameter: list(range(first, first + count))}, **kwargs)

    def trials(self) -> list[dict[str, Any]]:
        """The parameter values of every trial, in a stable order."""
        names = list(self.parameters)
        if self.sampling == "grid":
            combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*self.parameters.values())]
            return combos[: self.max_trials] if self.max_trials else combos
        rng = random.Random(self.seed)
        assert self.max_trials is not None
        drawn: list[dict[str, Any]] = []
        for _ in range(self.max_trials):
            trial: dict[str, Any] = {}
            for name, values in self.parameters.items():
                trial[name] = values.sample(rng) if isinstance(values, Uniform) else rng.choice(list(values))
            drawn.append(trial)
        return drawn

    def to_dict(self) -> dict[str, Any]:
        return {
            "parameters": {k: (v.to_dict() if isinstance(v, Uniform) else list(v)) for k, v in self.parameters.items()},
            "sampling": self.sampling,
            "primary_metric": self.primary_metric,
            "goal": self.goal,
            "max_trials": self.max_trials,
            "max_parallel": self.max_parallel,
            "seed": self.seed,
        }


def trial_arguments(trial: dict[str, Any]) -> list[str]:
    """Command-line arguments that give a trial its values: ``--name value``.

    A value that starts with ``-`` is written ``--name=value``, so that a parser
    does not take it for an option. Given after a container's own arguments
    (:func:`himl_kernel.fields.non_default_arguments`), the trial's values win.
    """
    args: list[str] = []
    for name, value in trial.items():
        text = format_cli_value(value)
        args += [f"--{name}={text}"] if text.startswith("-") else [f"--{name}", text]
    return args


def format_cli_value(value: Any) -> str:
    """A sweep value as command-line text: ``true``/``false``, floats exactly, lists and dicts as JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        import json

        return json.dumps(value, default=str)  # paths (and other objects) inside a list as their text
    return str(value)
