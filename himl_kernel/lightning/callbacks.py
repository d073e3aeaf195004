"""Callbacks the runner adds to every Trainer: a log-friendly progress bar and batch timing."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any

from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ProgressBar
from typing_extensions import override

if TYPE_CHECKING:
    from lightning.pytorch import LightningModule, Trainer


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class LineProgressBar(ProgressBar):
    """Progress as timestamped lines, one per ``refresh_rate`` batches and one at each stage's end.

    A log file or a cloud job's output stream cannot redraw a bar in place;
    this writes lines such as ``2024-05-01T10:00:00Z train epoch 3/20: 40/80
    batches (50%), loss=0.13``. The runner picks it when stdout is not a terminal.
    """

    def __init__(self, refresh_rate: int = 50, out: IO[str] | None = None) -> None:
        super().__init__()
        self.refresh_rate = max(refresh_rate, 1)
        self.out = out
        self._enabled = True

    @override
    def disable(self) -> None:
        self._enabled = False

    @override
    def enable(self) -> None:
        self._enabled = True

    def _line(self, trainer: Trainer, pl_module: LightningModule, stage: str, done: int, total: Any) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        if stage == "train":
            where = f"train epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        elif stage == "val":
            where = f"validation epoch {trainer.current_epoch + 1}"
        else:
            where = stage
        of = f"{done}/{int(total)}" if isinstance(total, (int, float)) and total != float("inf") else f"{done}"
        percent = (
            f" ({100 * done / total:.0f}%)" if isinstance(total, (int, float)) and 0 < total < float("inf") else ""
        )
        metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
        shown = "".join(f", {k}={v:.4g}" if isinstance(v, float) else f", {k}={v}" for k, v in metrics.items())
        print(f"{_now()} {where}: {of} batches{percent}{shown}", file=self.out or sys.stdout, flush=True)

    def _maybe(self, trainer: Trainer, pl_module: LightningModule, stage: str, batch_idx: int, total: Any) -> None:
        done = batch_idx + 1
        if done % self.refresh_rate == 0 or (isinstance(total, (int, float)) and done >= total):
            self._line(trainer, pl_module, stage, done, total)

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._maybe(trainer, pl_module, "train", batch_idx, self.total_train_batches)

    @override
    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.sanity_checking:
            self.has_dataloader_changed(dataloader_idx)
            self._maybe(trainer, pl_module, "val", batch_idx, self.total_val_batches_current_dataloader)

    @override
    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.has_dataloader_changed(dataloader_idx)
        self._maybe(trainer, pl_module, "test", batch_idx, self.total_test_batches_current_dataloader)


class _StageTimes:
    def __init__(self) -> None:
        self.epoch_start = time.perf_counter()
        self.last_batch_end: float | None = None
        self.batch_start = 0.0
        self.batch_times: list[float] = []
        self.load_times: list[float] = []
        self.alerts = 0


class BatchTimeCallback(Callback):
    """Batch and data-loading times per epoch, with alerts when loading is slow (hi-ml's diagnostics).

    For training and validation it logs, each epoch, ``timing/<stage>/epoch_time``,
    ``batch_time_mean``, ``batch_time_max`` and ``load_time_over_threshold``
    (seconds spent waiting for batches beyond ``max_batch_load_time_seconds``).
    A batch that waits longer than the threshold prints an alert, at most
    ``max_alerts_per_epoch`` an epoch and only in the first
    ``max_alert_epochs`` epochs. Only global rank zero logs and prints.
    """

    def __init__(
        self, max_batch_load_time_seconds: float = 0.5, max_alerts_per_epoch: int = 5, max_alert_epochs: int = 3
    ) -> None:
        self.threshold = max_batch_load_time_seconds
        self.max_alerts_per_epoch = max_alerts_per_epoch
        self.max_alert_epochs = max_alert_epochs
        self._stages: dict[str, _StageTimes] = {}

    def _epoch_start(self, stage: str) -> None:
        self._stages[stage] = _StageTimes()

    def _batch_start(self, trainer: Trainer, stage: str, batch_idx: int) -> None:
        times = self._stages.setdefault(stage, _StageTimes())
        now = time.perf_counter()
        load = now - (times.last_batch_end if times.last_batch_end is not None else times.epoch_start)
        times.load_times.append(load)
        times.batch_start = now
        if (
            load > self.threshold
            and trainer.is_global_zero
            and trainer.current_epoch < self.max_alert_epochs
            and times.alerts < self.max_alerts_per_epoch
        ):
            times.alerts += 1
            print(
                f"himl: {stage} epoch {trainer.current_epoch}, batch {batch_idx}: waited {load:.2f} s for data "
                f"(threshold {self.threshold:.2f} s)",
                file=sys.stderr,
                flush=True,
            )

    def _batch_end(self, stage: str) -> None:
        times = self._stages.get(stage)
        if times is not None:
            times.last_batch_end = time.perf_counter()
            times.batch_times.append(times.last_batch_end - times.batch_start)

    def _epoch_end(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        times = self._stages.pop(stage, None)
        if times is None or not times.batch_times or trainer.sanity_checking:
            return
        values = {
            f"timing/{stage}/epoch_time": time.perf_counter() - times.epoch_start,
            f"timing/{stage}/batch_time_mean": sum(times.batch_times) / len(times.batch_times),
            f"timing/{stage}/batch_time_max": max(times.batch_times),
            f"timing/{stage}/load_time_over_threshold": sum(max(t - self.threshold, 0.0) for t in times.load_times),
        }
        if trainer.is_global_zero:  # straight to the loggers: plain numbers of this process, no reduction
            # the step Lightning gives an epoch's own metrics: that of the epoch's last batch
            step = max(trainer.global_step - 1, 0)
            for logger in trainer.loggers:
                logger.log_metrics(values, step=step)

    @override
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_start("train")

    @override
    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_start("val")

    @override
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._batch_start(trainer, "train", batch_idx)

    @override
    def on_validation_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not trainer.sanity_checking:
            self._batch_start(trainer, "val", batch_idx)

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._batch_end("train")

    @override
    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.sanity_checking:
            self._batch_end("val")

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_end(trainer, pl_module, "train")

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_end(trainer, pl_module, "val")
