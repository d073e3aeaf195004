"""The container contract: a named experiment configuration with typed fields.

A container is a pydantic model: its fields are the experiment's settings,
each one a command-line option of ``himl run --model NAME`` and a key of an
optional YAML config file. The kernel asks it what datasets it needs and
whether it expands into a sweep, then calls :meth:`Container.run` inside the
job with the run's :class:`~himl_kernel.runinfo.RunInfo`.

Fields are declared like this; the description becomes the option's help::

    class MyExperiment(CrossValidation, Container):
        learning_rate: float = Field(1e-3, description="Adam's learning rate")

        def run(self, run_info: RunInfo) -> None:
            ...

A field's option must be free: a field named like an option of ``himl run``
(``--model``, ``--config``, ``--experiment``...), one of the shared compute
options (``--cluster``, ``--num_nodes``, ``--max_run_duration``...) or a
plugin's option is refused, in one line, when the container is loaded for a
run, because that option would never reach it. Where a hi-ml container had
such a field (``num_nodes``, ``cluster``), the kernel's option is the one: it
sizes the job, and code inside the job reads the result from the run (the
process's rank and world size, ``run_info``), not from a field. A
LightningContainer's ``num_nodes`` is a property, not a field: set in
``__init__`` it is the default of ``--num_nodes`` (see
:meth:`Container.default_num_nodes`).

hi-ml's containers set some fields in ``__init__``, after
``super().__init__()``; that works here too::

    class MyHimlExperiment(LightningContainer):
        def __init__(self) -> None:
            super().__init__()
            self.local_datasets = [Path("/data/panda")]
            self.max_epochs = 30

What ``__init__`` sets is the class's effective default: ``himl run`` builds
the container by calling ``__init__`` with no arguments, then sets the values
of the command line and the config file on top (they win, as in hi-ml). Such an
``__init__`` must be callable with no arguments; it may take ``**kwargs`` and
pass them to ``super().__init__``.

Every run writes its resolved fields to ``outputs/config.yaml``; ``himl run
--model NAME --config outputs/config.yaml`` runs the same configuration again.

The Lightning layer (``himl_kernel.lightning``) builds its LightningContainer
on this class.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import Self

if TYPE_CHECKING:
    from himl_kernel.datasets import DatasetConfig
    from himl_kernel.runinfo import RunInfo
    from himl_kernel.sweep import Sweep


class Container(BaseModel):
    """Base class of all experiment configurations."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, arbitrary_types_allowed=True)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Validate ``obj`` (field values) into a container; pydantic's, plus hi-ml-style ``__init__``.

        For a class with its own ``__init__`` the values start from what a
        no-argument ``cls()`` holds (the fields ``__init__`` sets), and those
        in ``obj`` replace them.
        """
        if not isinstance(obj, Mapping) or not has_own_init(cls):
            return super().model_validate(obj, **kwargs)
        base = effective_defaults_instance(cls)
        values = {name: getattr(base, name) for name in cls.model_fields}
        values.update(obj)
        # pydantic's validation would call __init__(**values), which a hi-ml __init__ does not take (or
        # overrides after super().__init__): validate as the same class without that __init__
        checked = _without_init(cls).model_validate(values, **kwargs)
        result = cls.model_construct(checked.model_fields_set, **{name: getattr(checked, name) for name in values})
        private = base.__pydantic_private__
        if private and result.__pydantic_private__ is not None:
            result.__pydantic_private__.update(private)  # what __init__ set in private attributes too
        return result

    def get_input_datasets(self) -> list[DatasetConfig]:
        """Datasets the job reads; their folders arrive as ``run_info.input_datasets``."""
        return []

    def get_output_datasets(self) -> list[DatasetConfig]:
        """Datasets the job writes; their folders arrive as ``run_info.output_datasets``."""
        return []

    def get_sweep(self) -> Sweep | None:
        """Trials to run as child runs (hyperparameters, folds, seeds), or None."""
        return None

    def get_tags(self) -> dict[str, str]:
        """Tags to put on the run, on top of those the kernel sets."""
        return {}

    def default_num_nodes(self) -> int | None:
        """The machines the job should have when ``--num_nodes`` is not given; None: one."""
        return None

    def make_paths_absolute(self, base: Path) -> None:
        """Make relative paths in the fields absolute against ``base``, the folder the job started in.

        The container runs in its outputs folder (see :mod:`himl_kernel.runner`),
        so a relative path would otherwise name something else. Fields holding a
        path, or a list or tuple of paths, are changed; override to add others.
        """

        def absolute(value: Any) -> Any:
            if isinstance(value, Path):
                return value if value.is_absolute() else base / value
            if isinstance(value, (list, tuple)) and any(isinstance(item, Path) for item in value):
                return type(value)(absolute(item) for item in value)
            return value

        for name in type(self).model_fields:
            value = getattr(self, name)
            new = absolute(value)
            if new is not value:
                setattr(self, name, new)

    def run(self, run_info: RunInfo) -> None:
        """Do the experiment's work inside the job."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")


def has_own_init(cls: type[BaseModel]) -> bool:
    """Whether ``cls`` (or a class between it and pydantic) defines ``__init__``, as hi-ml's containers do."""
    return cls.__init__ is not BaseModel.__init__


@functools.cache
def _without_init(cls: type[Container]) -> type[Container]:
    """``cls`` with pydantic's own ``__init__``: validates the same fields with the same validators."""
    namespace = {"__init__": BaseModel.__init__, "__module__": cls.__module__, "__qualname__": cls.__qualname__}
    plain: type[Container] = type(cls.__name__, (cls,), namespace)
    return plain


def effective_defaults_instance(cls: type[Container]) -> Container:
    """``cls()``: the container with only what its own ``__init__`` sets; a bad ``__init__`` is one line."""
    from pydantic import ValidationError

    from himl_kernel.errors import HimlError

    try:
        return cls()
    except TypeError as exc:
        raise HimlError(
            f"{cls.__name__}() failed: {exc}; a container's __init__ must be callable with no arguments "
            "(set fields after super().__init__(), as hi-ml's containers do)"
        ) from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(model)'}: {' '.join(err['msg'].split())}"
            for err in exc.errors()
        )
        raise HimlError(f"{cls.__name__}.__init__ sets a field wrongly: {problems}") from None


def effective_defaults(cls: type[BaseModel]) -> dict[str, Any]:
    """The value of each field of ``cls`` before any option: its ``__init__``'s when it has one, else the default.

    Fields without a default are left out.
    """
    if isinstance(cls, type) and issubclass(cls, Container) and has_own_init(cls):
        base = effective_defaults_instance(cls)
        return {name: getattr(base, name) for name in cls.model_fields}
    return {
        name: info.get_default(call_default_factory=True)
        for name, info in cls.model_fields.items()
        if not info.is_required()
    }


class CrossValidation(BaseModel):
    """k-fold cross-validation: ``crossval_count`` folds, this run being ``crossval_index``."""

    crossval_count: int = Field(1, ge=1, description="number of cross-validation folds; 1 means none")
    crossval_index: int | None = Field(
        None, ge=0, description="the fold this run trains on; set for each child run of a cross-validation"
    )

    @model_validator(mode="after")
    def _index_below_count(self) -> Any:
        if self.crossval_index is not None and self.crossval_index >= self.crossval_count:
            raise ValueError(
                f"crossval_index must be below crossval_count ({self.crossval_count}), got {self.crossval_index}"
            )
        return self

    @property
    def is_crossvalidation_parent(self) -> bool:
        return self.crossval_count > 1 and self.crossval_index is None

    def get_sweep(self) -> Sweep | None:
        if not self.is_crossvalidation_parent:
            return None
        from himl_kernel.sweep import Sweep

        return Sweep.crossval(self.crossval_count)
