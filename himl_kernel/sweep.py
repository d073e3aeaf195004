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
        max_parallel: how many trials may run at once; ``None`` (the default)
            leaves it to the backend: AzureML and Amulet let the service run
            as many as the cluster allows, and the local backend runs one at a
            time (each trial is a whole training process that would contend
            for this machine's GPUs and memory; ``--max-parallel N`` opts in).
        seed: the seed of random sampling, so a sweep can be re-drawn identically.
    """

    parameters: dict[str, Any] = field(default_factory=dict)
    sampling: Sampling = "grid"
    primary_metric: str = ""
    goal: Goal = "minimize"
    max_trials: int | None = None
    max_parallel: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.parameters:
            raise HimlError("a sweep needs at least one parameter")
        if self.sampling not in ("grid", "random"):
            raise HimlError(f"sweep sampling must be 'grid' or 'random', got {self.sampling!r}")
        if self.goal not in ("minimize", "maximize"):
            raise HimlError(f"sweep goal must be 'minimize' or 'maximize', got {self.goal!r}")
        if self.max_parallel is not None and self.max_parallel < 1:
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


# --- hi-ml's SDK v2 form of get_parameter_tuning_args -----------------------------

#: The keys of the dict a hi-ml container's ``get_parameter_tuning_args`` returns (``health_azure.himl``'s names).
PARAM_SAMPLING_ARG = "parameter_sampling"
MAX_TOTAL_TRIALS_ARG = "max_total_trials"
SAMPLING_ALGORITHM_ARG = "sampling_algorithm"
PRIMARY_METRIC_ARG = "primary_metric"
GOAL_ARG = "goal"
_HI_ML_KEYS = (PARAM_SAMPLING_ARG, MAX_TOTAL_TRIALS_ARG, SAMPLING_ALGORITHM_ARG, PRIMARY_METRIC_ARG, GOAL_ARG)


def is_hi_ml_tuning_args(args: dict[str, Any]) -> bool:
    """True when ``args`` is hi-ml's v2 dict (search space, sampling, trials) rather than name -> values."""
    return PARAM_SAMPLING_ARG in args


def _space_of(name: str, value: Any) -> Sequence[Any] | Uniform:
    """One parameter of an azure-ai-ml search space (Choice, Uniform, LogUniform) or a plain list, as a Sweep's."""
    kind = type(value).__name__
    if kind == "Choice" and hasattr(value, "values"):
        return list(value.values)
    if kind in ("Uniform", "LogUniform") and hasattr(value, "min_value") and hasattr(value, "max_value"):
        low, high = float(value.min_value), float(value.max_value)
        if kind == "LogUniform":  # azure-ai-ml's bounds are exponents: exp(uniform(min, max))
            return Uniform(math.exp(low), math.exp(high), log=True)
        return Uniform(low, high)
    if isinstance(value, Uniform) or (isinstance(value, Sequence) and not isinstance(value, (str, bytes))):
        return value if isinstance(value, Uniform) else list(value)
    raise HimlError(
        f"get_parameter_tuning_args: parameter {name!r} is a {kind}; expected a Choice, Uniform or LogUniform "
        "of azure.ai.ml.sweep, or a list of values"
    )


def sweep_from_hi_ml_args(args: dict[str, Any], extra: dict[str, list[Any]] | None = None) -> Sweep:
    """The Sweep of hi-ml's v2 ``get_parameter_tuning_args`` dict, with ``extra`` parameters (folds, seeds) added.

    The keys are :data:`PARAM_SAMPLING_ARG` (name to search space),
    :data:`MAX_TOTAL_TRIALS_ARG`, :data:`SAMPLING_ALGORITHM_ARG` (``grid`` or
    ``random``; ``bayesian`` is refused), :data:`PRIMARY_METRIC_ARG` and
    :data:`GOAL_ARG` (``Minimize`` or ``Maximize``, any case). An unknown key
    is one line, as a misspelt one would otherwise be dropped.
    """
    unknown = sorted(set(args) - set(_HI_ML_KEYS))
    if unknown:
        raise HimlError(f"get_parameter_tuning_args: unknown keys {unknown}; hi-ml's keys are {list(_HI_ML_KEYS)}")
    sampling_space = args.get(PARAM_SAMPLING_ARG)
    if not isinstance(sampling_space, dict) or not sampling_space:
        raise HimlError(f"get_parameter_tuning_args: {PARAM_SAMPLING_ARG!r} must be a non-empty dict of parameters")
    parameters: dict[str, Any] = {str(k): _space_of(str(k), v) for k, v in sampling_space.items()}
    parameters.update(extra or {})
    algorithm = str(args.get(SAMPLING_ALGORITHM_ARG, "grid")).strip().lower()
    if algorithm not in ("grid", "random"):
        raise HimlError(
            f"get_parameter_tuning_args: sampling algorithm {algorithm!r} is not supported here; use 'grid' or 'random'"
        )
    goal = str(args.get(GOAL_ARG, "minimize")).strip().lower()
    trials = args.get(MAX_TOTAL_TRIALS_ARG)
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int)):
        raise HimlError(f"get_parameter_tuning_args: {MAX_TOTAL_TRIALS_ARG!r} must be a whole number, got {trials!r}")
    return Sweep(
        parameters=parameters,
        sampling=algorithm,  # type: ignore[arg-type]
        primary_metric=str(args.get(PRIMARY_METRIC_ARG, "") or ""),
        goal=goal,  # type: ignore[arg-type]
        max_trials=trials,
    )
