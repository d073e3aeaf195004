"""hi-ml's logging helpers and callbacks (health_ml.utils) under their names, with the manual's Trainer code."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from lightning import pytorch as lp
from torch.utils.data import DataLoader, Dataset, TensorDataset

from himl_kernel.current import activate, current_run, deactivate
from himl_kernel.lightning import (
    AzureMLLogger,
    AzureMLProgressBar,
    BatchTimeCallback,
    log_learning_rate,
    log_on_epoch,
)
from himl_kernel.runinfo import RunInfo
from himl_kernel.runstore import RunStore

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def _data(rows: int = 8) -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, 2, generator=generator)
    return DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=2)


def _step(module: Any, batch: Any) -> torch.Tensor:
    x, y = batch
    return torch.nn.functional.mse_loss(module.layer(x), y)


class Line(pl.LightningModule):
    """A pytorch_lightning module as hi-ml's manual writes them: log_on_epoch and log_learning_rate."""

    def __init__(self, groups: int = 1) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.groups = groups

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = _step(self, batch)
        log_on_epoch(self, "loss", loss)
        log_learning_rate(self, "learning_rate")
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        log_on_epoch(self, metrics={"val/loss": _step(self, batch)})

    def test_step(self, batch: Any, batch_idx: int) -> None:
        log_on_epoch(self, {"test/loss": _step(self, batch)})

    def configure_optimizers(self) -> Any:
        if self.groups == 1:
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        else:
            optimizer = torch.optim.SGD(
                [{"params": [self.layer.weight], "lr": 0.1}, {"params": [self.layer.bias], "lr": 0.01}]
            )
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)}


class Recorder(pl.loggers.Logger):
    """A logger that keeps what it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[tuple[dict[str, float], int | None]] = []

    @property
    def name(self) -> str:
        return "recorder"

    @property
    def version(self) -> str:
        return "0"

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.metrics.append((dict(metrics), step))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def names(self) -> set[str]:
        return {key for metrics, _ in self.metrics for key in metrics}


def _trainer(package: Any = pl, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "max_epochs": 2,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "log_every_n_steps": 1,
    }
    options.update(kwargs)
    return package.Trainer(**options)


def test_azureml_logger_outside_a_run_creates_one_in_the_named_experiment_and_prints_where(
    himl_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = AzureMLLogger(enable_logging_outside_azure_ml=True, experiment_name="my_new_architecture")
    printed = capsys.readouterr().out.splitlines()
    run_id = logger.version
    assert printed[0] == f"Writing metrics to run {run_id} in experiment my_new_architecture."
    assert printed[1].startswith("To check progress, visit this URL: ") and run_id in printed[1]
    trainer = _trainer(logger=[logger])
    trainer.fit(Line(), _data(), _data(4))
    store = RunStore()
    run = store.get(run_id)
    assert run.experiment == "my_new_architecture" and run.status == "FINISHED"
    assert [step for step, _ in store.metric_history(run_id, "loss")] == [3, 7]  # one value an epoch
    assert len(store.metric_history(run_id, "val/loss")) == 2
    # one scheduler with one learning rate: the plain name; StepLR halves it each epoch
    assert [value for _, value in store.metric_history(run_id, "learning_rate")] == pytest.approx([0.1, 0.05])
    assert current_run() is None  # the run it made current is current no more


def test_azureml_logger_outside_a_run_without_permission_stores_nothing_and_says_so(
    himl_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = AzureMLLogger(enable_logging_outside_azure_ml=False)
    assert not logger.enabled
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "himl: AzureMLLogger: no run is active and enable_logging_outside_azure_ml is False: its metrics are not stored"
    ]
    _trainer(logger=[logger], max_epochs=1).fit(Line(), _data())
    assert not (himl_home / "mlflow.db").exists() or not RunStore().list_runs(max_results=5)


def test_azureml_logger_inside_a_run_writes_to_that_run_beside_tensorboard(
    himl_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = RunStore()
    stored = store.create_run("inside", "job")
    outputs, logs = store.folders(stored)
    info = RunInfo(stored.run_id, "local", outputs, logs, tracking_uri=store.tracking_uri)
    active = activate(info)
    try:
        logger = AzureMLLogger(enable_logging_outside_azure_ml=False, experiment_name="ignored inside a run")
        tensorboard = pl.loggers.TensorBoardLogger(str(tmp_path / "tb"))
        _trainer(logger=[tensorboard, logger]).fit(Line(), _data())
    finally:
        deactivate(active)
    assert capsys.readouterr().out.count("Writing metrics to run") == 0  # no second run was made
    assert logger.version == stored.run_id
    assert len(store.metric_history(stored.run_id, "loss")) == 2
    assert store.get(stored.run_id).status == "RUNNING"  # the run belongs to its job, which ends it
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert [r.experiment for r in store.list_runs(max_results=5)] == ["inside"]


def test_azureml_logger_keeps_a_snapshot_of_the_named_folder_with_its_ignore_rules(
    himl_home: Path, tmp_path: Path
) -> None:
    code = tmp_path / "trainer"
    (code / "models").mkdir(parents=True)
    (code / "train.py").write_text("print('train')\n", encoding="utf-8")
    (code / "models" / "net.py").write_text("NET = 1\n", encoding="utf-8")
    (code / "big.ckpt").write_bytes(b"0" * 64)
    (code / ".amlignore").write_text("*.ckpt\n", encoding="utf-8")
    logger = AzureMLLogger(True, experiment_name="snap", snapshot_directory=code)
    logger.finalize("success")
    folder = RunStore().get(logger.version).artifact_folder
    assert folder is not None
    kept = sorted(p.relative_to(folder / "snapshot").as_posix() for p in (folder / "snapshot").rglob("*.*"))
    assert kept == [".amlignore", "models/net.py", "train.py"]


def test_azureml_logger_refuses_a_snapshot_folder_that_is_not_there(himl_home: Path, tmp_path: Path) -> None:
    from himl_kernel.errors import HimlError

    with pytest.raises(HimlError, match=r"^AzureMLLogger: snapshot_directory '.*nowhere' is not a folder$"):
        AzureMLLogger(True, snapshot_directory=tmp_path / "nowhere")
    assert [r.status for r in RunStore().list_runs("azureml_logger")] == ["FAILED"]


@pytest.mark.parametrize("package", [pl, lp], ids=["pytorch_lightning", "lightning.pytorch"])
def test_azureml_progress_bar_prints_hi_ml_lines_and_replaces_the_trainers_own(
    package: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    progress = AzureMLProgressBar(refresh_rate=2, print_timestamp=True)
    trainer = _trainer(package, callbacks=[progress], logger=False, default_root_dir=tmp_path)
    assert trainer.progress_bar_callback is progress  # recognised as the bar, so no second bar is drawn
    module = Line() if package is pl else _lightning_line()
    trainer.fit(module, _data(), _data(4))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    tail = r"completed\. \d\d:\d\d elapsed, total epoch time ~ \d\d:\d\d"
    # the step is that of the batch just trained (the manual's "epoch 18 (step 94): 5/5" ends epoch 18 of 5 steps)
    assert re.fullmatch(rf"{STAMP} Training epoch 0 \(step 1\):    2/4 \(50%\) {tail}", lines[0])
    assert re.fullmatch(rf"{STAMP} Training epoch 0 \(step 3\):    4/4 \(100%\) {tail}", lines[1])
    assert re.fullmatch(rf"{STAMP} Validation epoch 0:    2/2 \(100%\) {tail}", lines[2])
    assert re.fullmatch(rf"{STAMP} Training epoch 1 \(step 5\):    2/4 \(50%\) {tail}", lines[3])
    assert len(lines) == 6


def _lightning_line() -> Any:
    class LightningLine(lp.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return _step(self, batch)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            log_on_epoch(self, "val/loss", _step(self, batch))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return LightningLine()


def test_azureml_progress_bar_without_timestamps_and_on_test(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    progress = AzureMLProgressBar(refresh_rate=10, print_timestamp=False)
    trainer = _trainer(callbacks=[progress], logger=False, max_epochs=1, default_root_dir=tmp_path)
    trainer.test(Line(), _data(6))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Testing")]
    assert len(lines) == 1 and re.fullmatch(r"Testing:    3/3 \(100%\) completed\. 00:00 elapsed, .*", lines[0])


class SlowRows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Rows that take ``delay`` seconds each to load."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.x = torch.randn(6, 2, generator=torch.Generator().manual_seed(1))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(self.delay)
        return self.x[index], self.x[index].sum(dim=0, keepdim=True)


def test_batch_time_callback_logs_hi_ml_metrics_and_prints_its_summary(capsys: pytest.CaptureFixture[str]) -> None:
    recorder = Recorder()
    timing = BatchTimeCallback(max_batch_load_time_seconds=0.02, max_alerts_per_epoch=1)
    slow = DataLoader(SlowRows(0.02), batch_size=2)  # 0.04 s a batch: every batch is over the threshold
    _trainer(callbacks=[timing], logger=[recorder], enable_progress_bar=False).fit(Line(), slow, _data(4))
    names = {
        f"timing/{stage}/{what}"
        for stage in ("train", "val")
        for what in ("epoch_time_sec", "batch_time_sec avg", "batch_time_sec max", "batch_loading_over_threshold_sec")
    }
    assert names <= recorder.names()
    train = [m for m, _ in recorder.metrics if "timing/train/epoch_time_sec" in m]
    assert len(train) == 2
    assert train[0]["timing/train/batch_loading_over_threshold_sec"] >= 3 * 0.04 * 0.9
    assert train[0]["timing/train/epoch_time_sec"] >= train[0]["timing/train/batch_time_sec max"]
    err = capsys.readouterr().err.splitlines()
    assert any(re.fullmatch(r"Epoch 0 training: Loaded the first minibatch of data in 0\.\d\d sec\.", e) for e in err)
    assert any(
        re.fullmatch(r"Epoch 1 training took \d+\.\d\dsec, of which waiting for data took 0\.\d\d sec total\.", e)
        for e in err
    )
    alerts = [e for e in err if re.fullmatch(r"Epoch 0 training, batch \d: loading the minibatch took .*", e)]
    assert len(alerts) == 1  # max_alerts_per_epoch


def test_log_learning_rate_names_every_parameter_group_as_hi_ml_does() -> None:
    recorder = Recorder()
    _trainer(logger=[recorder], max_epochs=1, enable_progress_bar=False).fit(Line(groups=2), _data())
    assert {"learning_rate/0/0", "learning_rate/0/1"} <= recorder.names()
    assert "learning_rate" not in recorder.names()
    last = next(m for m, _ in reversed(recorder.metrics) if "learning_rate/0/1" in m)
    assert last["learning_rate/0/0"] == pytest.approx(0.1) and last["learning_rate/0/1"] == pytest.approx(0.01)


def test_log_on_epoch_needs_a_name_and_a_value() -> None:
    module = Line()
    with pytest.raises(ValueError, match="give a name and a value"):
        log_on_epoch(module)
    with pytest.raises(ValueError, match="metric 'loss' has no value"):
        log_on_epoch(module, "loss")
    with pytest.raises(ValueError, match="must be a string, got Tensor"):
        log_on_epoch(module, torch.tensor(1.0))  # type: ignore[arg-type]


def test_checkpoint_parser_is_also_a_name_of_the_lightning_layer() -> None:
    from himl_kernel import checkpoints, lightning

    assert lightning.CheckpointParser is checkpoints.CheckpointParser
    assert set(lightning.__all__) >= {"AzureMLLogger", "AzureMLProgressBar", "BatchTimeCallback", "CheckpointParser"}
