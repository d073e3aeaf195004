"""DDP on the CPU: HelloWorld across two local processes (gloo) learns what one process learns."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Store

EPOCHS = 15
#: Both runs end at the noise floor: validation MSE about 0.0115 (noise variance 0.01), from about 2.5
#: before training. Two processes see batches of 2 x 16 rows, so half as many steps an epoch as one
#: process; their final validation losses agree to within 0.003 absolute (observed: about 0.0001).
TOLERANCE = 0.003


@pytest.mark.slow
def test_two_cpu_processes_reach_the_validation_loss_of_one(tmp_path: Path) -> None:
    store = Store(tmp_path / "home", tmp_path)
    single = store.himl("run", "--model", "HelloWorld", "--max_epochs", str(EPOCHS), "--experiment", "one")
    assert single.returncode == 0, single.stderr
    ddp = store.himl(
        "run", "--model", "HelloWorld", "--max_epochs", str(EPOCHS), "--devices", "2", "--strategy", "ddp",
        "--experiment", "ddp",
    )  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr
    assert "Starting with 2 processes" in ddp.stdout + ddp.stderr

    (one,) = store.runs.list_runs("one")
    (two,) = store.runs.list_runs("ddp")  # the second process joined the same run
    assert one.status == two.status == "FINISHED"
    one_history = store.runs.metric_history(one.run_id, "val/loss")
    two_history = store.runs.metric_history(two.run_id, "val/loss")
    assert len(one_history) == len(two_history) == EPOCHS
    # two processes take half as many optimizer steps per epoch
    assert two_history[-1][0] < one_history[-1][0]
    assert abs(one_history[-1][1] - two_history[-1][1]) <= TOLERANCE
    assert one_history[-1][1] < 0.02 and two_history[-1][1] < 0.02
    assert (store.outputs(two) / "checkpoints" / "last.ckpt").is_file()
