"""Callbacks: log-friendly progress bars and batch timing (hi-ml's ``AzureMLProgressBar`` and ``BatchTimeCallback``).

The runner adds :class:`BatchTimeCallback` to every Trainer, and
:class:`LineProgressBar` when stdout is not a terminal. hi-ml scripts build
:class:`AzureMLProgressBar` and :class:`BatchTimeCallback` themselves and hand
them to a Trainer of either Lightning package.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any

from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ProgressBar
from typing_extensions import override

from himl_kernel.lightning.flavour import EitherPackage

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


def _clock(seconds: float) -> str:
    """``mm:ss``, or ``h:mm:ss`` from an hour on."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class AzureMLProgressBar(EitherPackage, ProgressBar):
    """hi-ml's progress bar for logs: one line every ``refresh_rate`` batches and at each stage's end.

    The lines read ``2021-10-20T06:06:07Z Training epoch 18 (step 94):    5/5
    (100%) completed. 00:00 elapsed, total epoch time ~ 00:00``; the time stamp
    (UTC) is left out with ``print_timestamp=False``. With
    ``write_to_logging_info=True`` the lines go to the ``logging`` module at
    INFO level instead of stdout. Only global rank zero prints.
    """

    def __init__(
        self, refresh_rate: int = 50, print_timestamp: bool = True, write_to_logging_info: bool = False
    ) -> None:
        super().__init__()
        if refresh_rate < 0:
            raise ValueError(f"AzureMLProgressBar: refresh_rate must be 0 or more, got {refresh_rate}")
        self._refresh_rate = refresh_rate
        self.print_timestamp = print_timestamp
        self.write_to_logging_info = write_to_logging_info
        self._enabled = True
        self._stage = ""
        self._stage_start = 0.0
        self._total = 0.0

    @property
    def refresh_rate(self) -> int:
        return self._refresh_rate

    @property
    def is_enabled(self) -> bool:
        return self._enabled and self._refresh_rate > 0

    @property
    def is_disabled(self) -> bool:
        return not self.is_enabled

    @override
    def disable(self) -> None:
        self._enabled = False

    @override
    def enable(self) -> None:
        self._enabled = True

    def _begin(self, stage: str, total: Any, with_step: bool = False) -> None:
        self._stage = stage
        self._with_step = with_step
        self._stage_start = time.perf_counter()
        self._total = float(total) if isinstance(total, (int, float)) else float("inf")

    def _emit(self, line: str) -> None:
        if self.print_timestamp:
            line = f"{_now()} {line}"
        if self.write_to_logging_info:
            import logging

            logging.getLogger(__name__).info(line)
        else:
            print(line, flush=True)

    def _progress(self, trainer: Trainer, batch_idx: int) -> None:
        done = batch_idx + 1
        finite = 0 < self._total < float("inf")
        if not self.is_enabled or not trainer.is_global_zero:
            return
        if done % self._refresh_rate != 0 and not (finite and done >= self._total):
            return
        elapsed = time.perf_counter() - self._stage_start
        if finite:
            total = int(self._total)
            width = len(str(total))
            count = f"{done:>{width + 3}}/{total} ({100 * done / total:.0f}%) completed."
            estimate = f", total epoch time ~ {_clock(elapsed / done * total)}"
        else:
            count, estimate = f"{done:>4} completed.", ""
        stage = self._stage
        if getattr(self, "_with_step", False):  # the step of the batch just trained, as the manual's lines show
            stage += f" (step {max(trainer.global_step - 1, 0)})"
        self._emit(f"{stage}: {count} {_clock(elapsed)} elapsed{estimate}")

    @override
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._begin(f"Training epoch {trainer.current_epoch}", self.total_train_batches, with_step=True)

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._progress(trainer, batch_idx)

    @override
    def on_validation_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if trainer.sanity_checking:
            return
        if self.has_dataloader_changed(dataloader_idx) or batch_idx == 0:
            self._begin(f"Validation epoch {trainer.current_epoch}", self.total_val_batches_current_dataloader)

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
            self._progress(trainer, batch_idx)

    @override
    def on_test_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self.has_dataloader_changed(dataloader_idx) or batch_idx == 0:
            self._begin("Testing", self.total_test_batches_current_dataloader)

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
        self._progress(trainer, batch_idx)

    @override
    def on_predict_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self.has_dataloader_changed(dataloader_idx) or batch_idx == 0:
            self._begin("Predicting", self.total_predict_batches_current_dataloader)

    @override
    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._progress(trainer, batch_idx)


class _StageTimes:
    def __init__(self) -> None:
        self.epoch_start = time.perf_counter()
        self.last_batch_end: float | None = None
        self.batch_start = 0.0
        self.batch_times: list[float] = []
        self.load_times: list[float] = []
        self.alerts = 0


#: hi-ml's stage names in the metrics (``timing/train/...``, ``timing/val/...``) and in the messages.
_STAGE_WORDS = {"train": "training", "val": "validation"}


def timing_metric_names(stage: str) -> dict[str, str]:
    """The metric names of :class:`BatchTimeCallback` for ``stage`` (``train`` or ``val``), by what they hold.

    hi-ml's names with the unit written ``_sec`` instead of `` [sec]``:
    MLflow, which holds every himl run's metrics, refuses square brackets in
    a metric name.
    """
    prefix = f"timing/{stage}/"
    return {
        "epoch_time": prefix + "epoch_time_sec",
        "batch_time_avg": prefix + "batch_time_sec avg",
        "batch_time_max": prefix + "batch_time_sec max",
        "over_threshold": prefix + "batch_loading_over_threshold_sec",
    }


class BatchTimeCallback(EitherPackage, Callback):
    """Batch and data-loading times per epoch, with alerts when loading is slow (hi-ml's ``BatchTimeCallback``).

    For training and validation it logs, each epoch, the metrics of
    :func:`timing_metric_names`: the epoch's time, the mean and longest batch
    time, and the total time spent waiting for batches that took longer than
    ``max_batch_load_time_seconds`` to load. It prints, each epoch, how long
    the first batch took to load (``Epoch 3 training: Loaded the first
    minibatch of data in 0.52 sec.``) and a summary (``Epoch 3 training took
    4.10sec, of which waiting for data took 0.61 sec total.``). A batch that
    waits longer than the threshold prints an alert, at most
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

    @staticmethod
    def _say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def _epoch_start(self, stage: str) -> None:
        self._stages[stage] = _StageTimes()

    def _batch_start(self, trainer: Trainer, stage: str, batch_idx: int) -> None:
        times = self._stages.setdefault(stage, _StageTimes())
        now = time.perf_counter()
        load = now - (times.last_batch_end if times.last_batch_end is not None else times.epoch_start)
        times.load_times.append(load)
        times.batch_start = now
        if not trainer.is_global_zero:
            return
        words = f"Epoch {trainer.current_epoch} {_STAGE_WORDS[stage]}"
        if len(times.load_times) == 1:
            self._say(f"{words}: Loaded the first minibatch of data in {load:.2f} sec.")
        elif (
            load > self.threshold
            and trainer.current_epoch < self.max_alert_epochs
            and times.alerts < self.max_alerts_per_epoch
        ):
            times.alerts += 1
            self._say(
                f"{words}, batch {batch_idx}: loading the minibatch took {load:.2f} sec, above the threshold of "
                f"{self.threshold:.2f} sec"
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
        names = timing_metric_names(stage)
        epoch_time = time.perf_counter() - times.epoch_start
        values = {
            names["epoch_time"]: epoch_time,
            names["batch_time_avg"]: sum(times.batch_times) / len(times.batch_times),
            names["batch_time_max"]: max(times.batch_times),
            names["over_threshold"]: sum(t for t in times.load_times if t > self.threshold),
        }
        if trainer.is_global_zero:  # straight to the loggers: plain numbers of this process, no reduction
            self._say(
                f"Epoch {trainer.current_epoch} {_STAGE_WORDS[stage]} took {epoch_time:.2f}sec, of which waiting "
                f"for data took {sum(times.load_times):.2f} sec total."
            )
            slow = sum(1 for t in times.load_times if t > self.threshold)
            if slow and trainer.current_epoch < self.max_alert_epochs:
                self._say(
                    f"Epoch {trainer.current_epoch} {_STAGE_WORDS[stage]}: {slow} of {len(times.load_times)} "
                    f"minibatches took longer than {self.threshold:.2f} sec to load"
                )
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
