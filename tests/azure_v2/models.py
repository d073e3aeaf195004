"""A model (container) for the job tests: two inputs, one output, cross-validation."""

from __future__ import annotations

from pydantic import Field

from himl_kernel import hookimpl
from himl_kernel.container import Container, CrossValidation
from himl_kernel.datasets import DatasetConfig
from himl_kernel.runinfo import RunInfo


class TwoInputsCV(CrossValidation, Container):
    learning_rate: float = Field(1e-3, description="step size")

    def get_input_datasets(self) -> list[DatasetConfig]:
        return [
            DatasetConfig(name="mnist", use_mounting=True),
            DatasetConfig(
                name="labels", version=2, use_mounting=False, datastore="labelstore", target_folder="/tmp/labels"
            ),
        ]

    def get_output_datasets(self) -> list[DatasetConfig]:
        return [DatasetConfig(name="features", use_mounting=True)]

    def run(self, run_info: RunInfo) -> None:
        pass


class TestModels:
    """A plugin object registering TwoInputsCV."""

    @hookimpl
    def himl_register_containers(self, registry) -> None:  # type: ignore[no-untyped-def]
        registry.add("TwoInputsCV", TwoInputsCV, "two inputs, one output, cross-validation")
