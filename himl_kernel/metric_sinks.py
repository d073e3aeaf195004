"""The built-in metric sinks: MLflow (the run store) and TensorBoard."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.runinfo import RunInfo
    from himl_kernel.runstore import RunStore


class MlflowSink:
    """Writes to the run's MLflow run, in the store the run lives in."""

    def __init__(self, run: RunInfo, store: RunStore) -> None:
        self.run_id = run.run_id
        self.store = store

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.store.log_metrics(self.run_id, dict(metrics), step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        if params:
            self.store.log_params(self.run_id, dict(params))

    def close(self) -> None:
        pass


def mlflow_sink(run: RunInfo) -> MlflowSink:
    from himl_kernel.runstore import RunStore

    return MlflowSink(run, RunStore(tracking_uri=run.tracking_uri))


class TensorBoardSink:
    """Scalars as TensorBoard event files in the run's logs folder."""

    def __init__(self, run: RunInfo) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise HimlError("logger 'tensorboard' needs torch and tensorboard: pip install torch tensorboard") from None
        self.writer = SummaryWriter(log_dir=str(run.logs_folder))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, global_step=step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        text = "\n".join(f"    {k}: {v}" for k, v in params.items())
        self.writer.add_text("params", text)

    def close(self) -> None:
        self.writer.close()


def tensorboard_sink(run: RunInfo) -> TensorBoardSink:
    return TensorBoardSink(run)
