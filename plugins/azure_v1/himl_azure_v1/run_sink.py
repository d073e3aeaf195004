"""The kernel's metrics and parameters, inside an SDK v1 job, written to the job's own v1 ``Run``.

The factory applies only in a run this plugin's detection filled (backend
``azureml-v1``); elsewhere it returns None, so it can be a default logger. The
kernel already writes from global rank zero only and drops (metric, step) pairs
the run holds; the v1 ``Run`` batches what it is given and sends it on ``flush``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from himl_azure_v1.runconfig import BACKEND

if TYPE_CHECKING:
    from himl_kernel.contracts import MetricSink
    from himl_kernel.runinfo import RunInfo


class V1RunSink:
    """Metrics as ``Run.log`` (a metric with a step as a row of step and value), parameters as run tags."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for name, value in metrics.items():
            if step is None:
                self.run.log(name, value)
            else:
                self.run.log_row(name, step=step, value=value)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.run.set_tags({f"param.{name}": str(value) for name, value in params.items()})

    def close(self) -> None:
        self.run.flush()


def v1_run_sink(run: RunInfo) -> MetricSink | None:
    """A sink into the current v1 ``Run`` inside an SDK v1 job; None anywhere else."""
    if run.backend != BACKEND or not run.is_remote:
        return None
    import himl_azure_v1

    return V1RunSink(himl_azure_v1.RUN_CONTEXT)
