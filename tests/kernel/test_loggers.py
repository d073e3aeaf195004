"""The built-in loggers and the plain logging functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from himl_kernel.cli.main import main
from himl_kernel.current import activate, current_run, deactivate, log_metric, log_metrics, log_params
from himl_kernel.errors import HimlError
from himl_kernel.plugins import build_host
from himl_kernel.runinfo import RunInfo
from himl_kernel.runstore import RunStore


def test_tensorboard_logger_writes_event_files_into_the_run_logs(
    himl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("HIML_LOGGERS", "mlflow,tensorboard")
    assert main(["run", "--model", "PlainHelloWorld", "--max_epochs", "3"]) == 0
    store = RunStore()
    (run,) = store.list_runs("PlainHelloWorld")
    logs = store.folders(run)[1]
    events = list(logs.glob("events.out.tfevents.*"))
    assert len(events) == 1
    accumulator = EventAccumulator(str(logs))
    accumulator.Reload()
    assert [e.step for e in accumulator.Scalars("val/loss")] == [0, 1, 2]
    mlflow_values = [v for _, v in store.metric_history(run.run_id, "val/loss")]
    assert [e.value for e in accumulator.Scalars("val/loss")] == pytest.approx(mlflow_values, rel=1e-6)


def test_unknown_logger_name_lists_the_known_ones(himl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIML_LOGGERS", "mlflow,wandb")
    info = RunInfo(run_id="x", backend="local", output_folder=himl_home, logs_folder=himl_home)
    with pytest.raises(HimlError, match=r"unknown logger 'wandb'.*known: mlflow, tensorboard"):
        activate(info, build_host(autoload=False))


def test_log_functions_reach_every_sink_of_the_current_run(himl_home: Path) -> None:
    store = RunStore()
    stored = store.create_run("plain", "r")
    outputs, logs = store.folders(stored)
    info = RunInfo(stored.run_id, "local", outputs, logs, tracking_uri=store.tracking_uri)
    active = activate(info, build_host(autoload=False))
    try:
        assert current_run() == info
        log_metric("acc", 0.5, step=1)
        log_metrics({"acc": 0.75, "loss": 2}, step=2)
        log_params({"lr": 0.1, "name": "x"})
        with pytest.raises(HimlError, match="metric 'loss' must be a number, got 'high'"):
            log_metrics({"loss": "high"})  # type: ignore[dict-item]
    finally:
        deactivate(active)
    assert current_run() is None
    assert store.metric_history(stored.run_id, "acc") == [(1, 0.5), (2, 0.75)]
    assert store.get(stored.run_id).params == {"lr": "0.1", "name": "x"}


def test_logging_outside_a_run_says_how_to_start_one() -> None:
    with pytest.raises(HimlError, match=r"no run is active.*submit_if_needed"):
        log_metric("x", 1.0)
