"""Lightning metrics into the run's own loggers, each (metric, step) once.

:class:`RunLogger` is the Trainer's logger. It hands what Lightning logs to
the kernel's :func:`~himl_kernel.current.log_metrics`, which sends it to the
sinks the kernel attached to the current run (the logger hook: the run's
MLflow run by default), and adds TensorBoard event files in the run's logs
folder. The kernel drops every (metric, step) the run already holds, so a run
resumed after its process was killed, which replays the epochs since its last
recovery checkpoint, has a history that reads as if it had never stopped;
plain PyTorch and Fabric loops get the same through the same function.

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

from himl_kernel.current import attach_sink, current_sinks, detach_sink, log_metrics, log_params
from himl_kernel.metric_sinks import TensorBoardSink

if TYPE_CHECKING:
    import pytorch_lightning
    from lightning.pytorch import LightningModule
    from torch import Tensor

    from himl_kernel.contracts import MetricSink
    from himl_kernel.runinfo import RunInfo

HPARAMS_PREFIX = "model"


class RunLogger(Logger):
    """A Lightning logger writing through the kernel to the current run's sinks."""

    def __init__(self, run_info: RunInfo, tensorboard: bool = True) -> None:
        super().__init__()
        self.run_info = run_info
        self._want_tensorboard = tensorboard
        self._own_sink: MetricSink | None = None
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

    def _start(self) -> None:
        """Attach TensorBoard event files to the run, unless one of its loggers writes them already."""
        if not self._want_tensorboard:
            return
        self._want_tensorboard = False
        if any(isinstance(s, TensorBoardSink) for s in current_sinks()):
            return
        try:
            sink = TensorBoardSink(self.run_info)
        except Exception as exc:  # TensorBoard missing: metrics still reach the run store
            print(f"himl: warning: no TensorBoard event files: {exc}", file=sys.stderr)
            return
        attach_sink(sink)
        self._own_sink = sink

    @override
    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Queue the metrics of ``step``; the queue goes out when a new step arrives, or on flush()."""
        self._start()
        at = int(step or 0)
        if self._queued and at != self._queued_step:
            self.flush()
        self._queued_step = at
        for key, value in metrics.items():
            self._queued.setdefault(key, float(value))  # the first value of a step wins, as in the run store

    @rank_zero_only
    def flush(self) -> None:
        """Send the queued metrics (one write per step instead of one per Lightning call)."""
        if not self._queued:
            return
        queued, self._queued = self._queued, {}
        log_metrics(queued, self._queued_step)

    @override
    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        self._start()
        values = vars(params) if isinstance(params, Namespace) else dict(params)
        if values:
            log_params({HPARAMS_PREFIX: values})

    @override
    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.flush()
        if self._own_sink is not None:
            detach_sink(self._own_sink)
            self._own_sink.close()
            self._own_sink = None


def log_on_epoch(
    module: LightningModule | pytorch_lightning.LightningModule,
    name: str | Mapping[str, Tensor | float] | None = None,
    value: Tensor | float | None = None,
    metrics: Mapping[str, Tensor | float] | None = None,
    reduce_fx: str = "mean",
    sync_dist: bool | None = None,
) -> None:
    """Log one metric (``name``, ``value``), or a dict of them, as an average over the epoch (hi-ml's helper).

    The dict may come as ``metrics=`` (hi-ml's keyword) or in place of
    ``name``. ``sync_dist`` left as None averages across processes exactly when
    the Trainer runs more than one (hi-ml's rule); True or False force it.
    """
    logged: dict[str, Tensor | float | None] = {}
    if isinstance(name, Mapping):
        logged.update(name)
    elif name is not None:
        if not isinstance(name, str):
            raise ValueError(f"log_on_epoch: the metric name must be a string, got {type(name).__name__}")
        logged[name] = value
    logged.update(metrics or {})
    if not logged:
        raise ValueError("log_on_epoch: give a name and a value, or a dict of metrics")
    if sync_dist is None:
        trainer = getattr(module, "_trainer", None)
        sync_dist = trainer is not None and trainer.world_size > 1
    for key, item in logged.items():
        if item is None:
            raise ValueError(f"log_on_epoch: metric {key!r} has no value")
        module.log(key, item, on_step=False, on_epoch=True, sync_dist=sync_dist, reduce_fx=reduce_fx)


def learning_rates(
    module: LightningModule | pytorch_lightning.LightningModule, name: str = "learning_rate"
) -> dict[str, float]:
    """The learning rates ``log_learning_rate`` logs, by hi-ml's names.

    With learning-rate schedulers: every value each scheduler reports
    (``get_last_lr()``, one per parameter group), named ``name/i/j`` for
    scheduler ``i``, value ``j``, or ``name`` alone when there is one
    scheduler with one value. Without schedulers, the same for each
    optimizer's parameter groups.
    """
    trainer = module.trainer
    schedulers = [config.scheduler for config in trainer.lr_scheduler_configs]
    if schedulers:
        values = [[float(lr) for lr in scheduler.get_last_lr()] for scheduler in schedulers]
    else:
        values = [[float(group["lr"]) for group in optimizer.param_groups] for optimizer in trainer.optimizers]
    if not values:
        raise ValueError("log_learning_rate: the Trainer has no optimizer yet (call it during training)")
    if len(values) == 1 and len(values[0]) == 1:
        return {name: values[0][0]}
    return {f"{name}/{i}/{j}": lr for i, rates in enumerate(values) for j, lr in enumerate(rates)}


def log_learning_rate(module: LightningModule | pytorch_lightning.LightningModule, name: str = "learning_rate") -> None:
    """Log every learning rate of the module's schedulers (or optimizers) once per epoch, as hi-ml does.

    The names are those of :func:`learning_rates`: ``name``, or ``name/i/j``
    when there are several schedulers or parameter groups.
    """
    log_on_epoch(module, learning_rates(module, name), sync_dist=False)
