"""HelloWorld through `himl run`: training, checkpoints, metrics, and starting from checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from himl_kernel.cli.main import main
from himl_kernel.lightning.checkpointing import recovery_checkpoints
from himl_kernel.runstore import StoredRun

from .conftest import Store, run_here

EPOCHS = 4


@pytest.fixture(scope="module")
def trained(store: Store) -> StoredRun:
    """One HelloWorld run of four epochs, shared by the tests that read or start from it."""
    return run_here(store, "--max_epochs", str(EPOCHS))


def weights(path: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return state


def test_helloworld_trains_validates_tests_and_keeps_checkpoints_metrics_and_event_files(
    store: Store, trained: StoredRun
) -> None:
    run = store.runs.get(trained.run_id)
    assert run.status == "FINISHED"
    outputs, logs = store.runs.folders(run)
    checkpoints = outputs / "checkpoints"
    assert (checkpoints / "last.ckpt").is_file() and (checkpoints / "best.ckpt").is_file()
    assert [epoch for epoch, _ in recovery_checkpoints(checkpoints)] == [EPOCHS - 1, EPOCHS - 2]
    assert not list(checkpoints.glob(".*"))  # no temporary files left behind
    # one validation loss per epoch, in the run's own MLflow run
    history = store.runs.metric_history(run.run_id, "val/loss")
    assert len(history) == EPOCHS and len({step for step, _ in history}) == EPOCHS
    assert history[-1][1] < history[0][1]
    assert [v for _, v in store.runs.metric_history(run.run_id, "epoch") if v == EPOCHS - 1]
    assert 0 < run.metrics["test/loss"] < 0.05  # y = 2x + 1 with noise 0.1: the floor is 0.01
    assert run.params["effective_random_seed"] == "42" and run.params["max_epochs"] == str(EPOCHS)
    assert list(logs.glob("events.out.tfevents.*")), "no TensorBoard event files in logs/"
    assert (outputs / "dataset.csv").read_text().startswith("x,y\n")


def test_inference_only_on_a_run_checkpoint_reproduces_its_test_metrics(store: Store, trained: StoredRun) -> None:
    # hi-ml's form: the run id alone names the run's last checkpoint
    run = run_here(store, "--run_inference_only", "--src_checkpoint", trained.run_id)
    assert run.run_id != trained.run_id
    assert run.metrics["test/loss"] == pytest.approx(store.runs.get(trained.run_id).metrics["test/loss"], rel=1e-6)
    assert "val/loss" not in run.metrics  # no training, no validation
    assert not (store.outputs(run) / "checkpoints" / "last.ckpt").exists()


def test_resume_training_with_more_epochs_continues_from_the_checkpoint_epoch(store: Store, trained: StoredRun) -> None:
    source = f"{trained.run_id}:checkpoints/last.ckpt"
    run = run_here(store, "--resume_training", "--src_checkpoint", source, "--max_epochs", str(EPOCHS + 2))
    val_steps = [step for step, _ in store.runs.metric_history(run.run_id, "val/loss")]
    epoch_at = dict(store.runs.metric_history(run.run_id, "epoch"))
    assert [int(epoch_at[step]) for step in val_steps] == [EPOCHS, EPOCHS + 1]  # two more epochs, not six
    last = torch.load(store.outputs(run) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == EPOCHS + 1
    first_steps = store.runs.metric_history(run.run_id, "val/loss")[0][0]
    assert first_steps > store.runs.metric_history(trained.run_id, "val/loss")[-1][0]  # global steps carry on


def test_truncated_src_checkpoint_is_one_line_naming_the_file(
    store: Store, trained: StoredRun, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = (store.outputs(trained) / "checkpoints" / "last.ckpt").read_bytes()
    broken = store.cwd / "truncated.ckpt"
    broken.write_bytes(whole[: len(whole) // 2])
    capsys.readouterr()
    code = main(["run", "--model", "HelloWorld", "--run_inference_only", "--src_checkpoint", str(broken)])
    err = capsys.readouterr().err
    assert code != 0
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, err
    assert str(broken) in errors[0] and "truncated or corrupt" in errors[0]
    assert "Traceback" not in err


def test_corrupt_recovery_checkpoint_is_skipped_and_the_previous_one_used(
    store: Store, trained: StoredRun, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A run whose process died after epoch 3: its outputs hold the trained run's recovery checkpoints,
    # and the newest one was damaged as the machine went down.
    runs = store.runs
    interrupted = runs.create_run("interrupted", "HelloWorld")
    outputs, logs = runs.folders(interrupted)
    shutil.copytree(store.outputs(trained) / "checkpoints", outputs / "checkpoints")
    (outputs / "checkpoints" / "last.ckpt").unlink()
    newest = outputs / "checkpoints" / f"recovery-epoch={EPOCHS - 1:04d}.ckpt"
    newest.write_bytes(newest.read_bytes()[:1000])
    for key, value in {
        "HIML_BACKEND": "local",
        "HIML_RUN_ID": interrupted.run_id,
        "HIML_OUTPUT_FOLDER": str(outputs),
        "HIML_LOGS_FOLDER": str(logs),
        "MLFLOW_TRACKING_URI": runs.tracking_uri,
    }.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()

    assert main(["run", "--model", "HelloWorld", "--max_epochs", str(EPOCHS)]) == 0

    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if "skipping recovery checkpoint" in line]
    assert len(warnings) == 1 and str(newest) in warnings[0]
    assert f"resuming from recovery checkpoint {outputs / 'checkpoints'}/recovery-epoch={EPOCHS - 2:04d}.ckpt" in out
    assert len(runs.metric_history(interrupted.run_id, "val/loss")) == 1  # only the last epoch was trained again
    expected = weights(store.outputs(trained) / "checkpoints" / "last.ckpt")
    got = weights(outputs / "checkpoints" / "last.ckpt")
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_fast_dev_run_and_simple_profiler(store: Store) -> None:
    run = run_here(store, "--pl_fast_dev_run", "2", "--pl_profiler", "simple")
    outputs = store.outputs(run)
    assert store.runs.get(run.run_id).status == "FINISHED"
    profiles = sorted(p.name for p in (outputs / "profiler").iterdir())
    assert profiles == ["fit-profile.txt", "test-profile.txt"]
    assert "run_training_epoch" in (outputs / "profiler" / "fit-profile.txt").read_text()
    # a smoke test: Lightning writes no checkpoints and logs no metrics
    assert not list((outputs / "checkpoints").glob("*.ckpt"))
    assert "val/loss" not in store.runs.get(run.run_id).metrics


def test_crossvalidation_runs_three_folds_with_distinct_seeds_and_aggregates_them(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = run_here(store, "--crossval_count", "3", "--max_epochs", "2")
    children = store.runs.children(parent.run_id)
    assert sorted(c.params["crossval_index"] for c in children) == ["0", "1", "2"]
    assert sorted(c.params["effective_random_seed"] for c in children) == ["42", "43", "44"]
    assert all(c.status == "FINISHED" for c in children)
    assert len({c.metrics["val/loss"] for c in children}) == 3  # each fold validates on other rows
    capsys.readouterr()
    assert main(["runs", "aggregate", parent.run_id, "--format", "table"]) == 0
    table = capsys.readouterr().out
    assert all(f"crossval_index={i}" in table for i in range(3))
    assert any(line.startswith("val/loss") for line in table.splitlines())
