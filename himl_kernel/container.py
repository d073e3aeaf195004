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
process's rank and world size, ``run_info``), not from a field.

Every run writes its resolved fields to ``outputs/config.yaml``; ``himl run
--model NAME --config outputs/config.yaml`` runs the same configuration again.

The Lightning layer (``himl_kernel.lightning``) builds its LightningContainer
on this class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from himl_kernel.datasets import DatasetConfig
    from himl_kernel.runinfo import RunInfo
    from himl_kernel.sweep import Sweep


class Container(BaseModel):
    """Base class of all experiment configurations."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, arbitrary_types_allowed=True)

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

    def run(self, run_info: RunInfo) -> None:
        """Do the experiment's work inside the job."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")


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
