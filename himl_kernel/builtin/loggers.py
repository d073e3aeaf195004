"""Built-in loggers: the run store (MLflow) and TensorBoard event files."""

from __future__ import annotations

from typing import TYPE_CHECKING

from himl_kernel import hookimpl

if TYPE_CHECKING:
    from himl_kernel.contracts import LoggerFactory
    from himl_kernel.registry import Registry


@hookimpl
def himl_register_loggers(registry: Registry[LoggerFactory]) -> None:
    registry.add(
        "mlflow",
        "himl_kernel.metric_sinks:mlflow_sink",
        "metrics and parameters into the run's MLflow run (local SQLite store by default)",
        default=True,
    )
    registry.add(
        "tensorboard",
        "himl_kernel.metric_sinks:tensorboard_sink",
        "TensorBoard event files in the run's logs folder (needs the tensorboard package)",
        default=False,
    )
