"""Lightning metrics into the run's own loggers, each (metric, step) once.

:class:`RunLogger` is the Trainer's logger. It forwards what Lightning logs to
the sinks the kernel attached to the current run (the logger hook: the run's
MLflow run by default), and writes TensorBoard event files into the run's logs
folder. A run that is resumed after its process was killed replays the epochs
since its last recovery checkpoint; the logger reads the run's metric history
first and drops every (metric, step) pair that is already there, so the
history reads as if the run had never stopped.

Metrics of one step are written together: Lightning hands them over in
several calls (validation, training epoch, timing), and each write to a
SQLite store costs milliseconds. :meth:`RunLogger.flush` writes what is
queued; the recovery checkpoint calls it before a checkpoint becomes visible,
so no metric of an epoch the checkpoint covers is lost with a killed process.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

if TYPE_CHECKING:
    from lightning.pytorch import LightningModule
    from torch import Tensor

    from himl_kernel.contracts import MetricSink
    from himl_kernel.runinfo import RunInfo

HPARAMS_PREFIX = "model."


def logged_pairs(run_info: RunInfo) -> set[tuple[str, int]]:
    """Every (metric, step) the run already has in its run store."""
    from himl_kernel.runstore import RunStore

    store = RunStore(tracking_uri=run_info.tracking_uri)
    if not store.exists(run_info.run_id):
        return set()
    pairs: set[tuple[str, int]] = set()
    for key in store.get(run_info.run_id).metrics:
        pairs.update((key, step) for step, _ in store.metric_history(run_info.run_id, key))
    return pairs


class RunLogger(Logger):
    """A Lightning logger writing to the current run's sinks, skipping pairs already logged."""

    def __init__(self, run_info: RunInfo, sinks: list[MetricSink], tensorboard: bool = True) -> None:
        super().__init__()
        self.run_info = run_info
        self.sinks = list(sinks)
        self._want_tensorboard = tensorboard
        self._own_sinks: list[MetricSink] = []
        self._seen: set[tuple[str, int]] | None = None
        self._queued: dict[str, float] = {}
        self._queued_step = 0

    @property
    @override
    def name(self) -> str:
        return "himl"

    @property
    @override
    def version(self) -> str:
        return self.run_info.run_id

    @property
    @override
    def save_dir(self) -> str:
        return str(self.run_info.logs_folder)

    def _start(self) -> set[tuple[str, int]]:
        """The run's history (read on first use, rank zero only), and a TensorBoard writer."""
        if self._seen is None:
            self._seen = logged_pairs(self.run_info)
        from himl_kernel.metric_sinks import TensorBoardSink

        if self._want_tensorboard and not any(isinstance(s, TensorBoardSink) for s in self.sinks):
            try:
                sink = TensorBoardSink(self.run_info)
            except Exception as exc:  # TensorBoard missing: metrics still reach the run store
                self._want_tensorboard = False
                print(f"himl: warning: no TensorBoard event files: {exc}", file=sys.stderr)
            else:
                self._own_sinks.append(sink)
                self.sinks.append(sink)
        return self._seen

    @override
    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Queue the metrics of ``step``; the queue goes out when a new step arrives, or on flush()."""
        seen = self._start()
        at = int(step or 0)
        if self._queued and at != self._queued_step:
            self.flush()
        self._queued_step = at
        for key, value in metrics.items():
            if (key, at) not in seen:
                self._queued[key] = float(value)
                seen.add((key, at))

    @rank_zero_only
    def flush(self) -> None:
        """Send the queued metrics to the sinks (one write per step instead of one per Lightning call)."""
        if not self._queued:
            return
        queued, self._queued = self._queued, {}
        for sink in self.sinks:
            sink.log_metrics(queued, self._queued_step)

    @override
    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        from himl_kernel.runner import flat_params

        self._start()
        values = vars(params) if isinstance(params, Namespace) else dict(params)
        flat = {f"{HPARAMS_PREFIX}{key}": value for key, value in flat_params(values).items()}
        for sink in self.sinks:
            sink.log_params(flat)

    @override
    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.flush()
        for sink in self._own_sinks:
            sink.close()
            self.sinks.remove(sink)
        self._own_sinks.clear()


def log_on_epoch(
    module: LightningModule,
    name: str | Mapping[str, Tensor | float],
    value: Tensor | float | None = None,
    *,
    sync_dist: bool = True,
    reduce_fx: str = "mean",
) -> None:
    """Log one metric, or a dict of them, averaged over the epoch (and over processes under DDP)."""
    metrics = dict(name) if isinstance(name, Mapping) else {name: value}
    for key, item in metrics.items():
        if item is None:
            raise ValueError(f"log_on_epoch: metric {key!r} has no value")
        module.log(key, item, on_step=False, on_epoch=True, sync_dist=sync_dist, reduce_fx=reduce_fx)


def log_learning_rate(module: LightningModule, name: str = "learning_rate") -> None:
    """Log the current learning rate of each optimizer's first parameter group, once per epoch."""
    optimizers = module.trainer.optimizers
    for index, optimizer in enumerate(optimizers):
        key = name if len(optimizers) == 1 else f"{name}/{index}"
        module.log(key, float(optimizer.param_groups[0]["lr"]), on_step=False, on_epoch=True, sync_dist=False)
