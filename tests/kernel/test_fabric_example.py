"""examples/fabric_regression.py: a Lightning Fabric loop on two processes, using the kernel's services.

Both processes call log_metrics; only global rank zero writes, so each epoch
is in the run store once. Killed and rerun, the loop carries on from the
kernel's recovery checkpoint and ends with the weights of an uninterrupted run.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from himl_kernel.runstore import RunStore

from ..conftest import HIML, REPO
from .test_plain_trainer import environment, final_weights

EXAMPLE = REPO / "examples" / "fabric_regression.py"
EPOCHS = 30
COMMAND = (HIML, "submit", str(EXAMPLE), "--", "--devices", "2", "--epochs", str(EPOCHS), "--rows", "4096")


def epoch_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("fabric_regression: epoch ")]


@pytest.mark.slow
def test_two_fabric_processes_log_each_epoch_once_and_a_killed_run_resumes_to_the_same_weights(
    tmp_path: Path,
) -> None:
    calm_home, stormy_home = tmp_path / "calm", tmp_path / "stormy"
    calm = subprocess.run(
        COMMAND, cwd=tmp_path, env=environment(calm_home), capture_output=True, text=True, timeout=300
    )
    assert calm.returncode == 0, calm.stderr
    assert len(epoch_lines(calm.stdout)) == EPOCHS  # printed by rank zero alone

    log = tmp_path / "attempt.txt"
    with open(log, "w") as sink:
        process = subprocess.Popen(COMMAND, cwd=tmp_path, env=environment(stormy_home), stdout=sink, stderr=sink)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and len(epoch_lines(log.read_text())) < 2:
        time.sleep(0.01)
    assert process.poll() is None, f"the attempt ended before it could be killed:\n{log.read_text()}"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    final = subprocess.run(
        COMMAND, cwd=tmp_path, env=environment(stormy_home), capture_output=True, text=True, timeout=300
    )
    assert final.returncode == 0, final.stderr
    assert "fabric_regression: resumed from the recovery checkpoint of epoch" in final.stdout

    calm_store, stormy_store = RunStore(home=calm_home), RunStore(home=stormy_home)
    calm_id, calm_weights = final_weights(calm_store, "fabric_regression", "model.pt")
    stormy_id, stormy_weights = final_weights(stormy_store, "fabric_regression", "model.pt")
    for key, tensor in calm_weights.items():
        assert torch.equal(tensor, stormy_weights[key]), key
    for store, run_id in ((calm_store, calm_id), (stormy_store, stormy_id)):
        steps = [step for step, _ in store.metric_history(run_id, "train/loss")]
        assert sorted(steps) == list(range(EPOCHS)), "an epoch was logged twice (by a second rank or a rerun)"
    assert sorted(stormy_store.metric_history(stormy_id, "train/loss")) == sorted(
        calm_store.metric_history(calm_id, "train/loss")
    )
