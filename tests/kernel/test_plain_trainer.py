"""examples/plain_pytorch.py, a loop without Lightning, killed with SIGKILL three times and rerun.

It ends with the weights of a run that was never interrupted, and every
(metric, step) in the run store once: the kernel's recovery checkpoints and
its de-duplicating log_metrics do for a plain loop what the Lightning layer
does for HelloWorld.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from himl_kernel.runstore import RunStore

from ..conftest import HIML, JOB_VARIABLES, REPO

EXAMPLE = REPO / "examples" / "plain_pytorch.py"
EPOCHS = 24
SAVED = "checkpoints/last.pt"
#: options of every attempt: the same command, so the local backend carries on the same run
OPTIONS = ("--make-data", "--rows", "6000", "--epochs", str(EPOCHS), "--log-every", "10")


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in JOB_VARIABLES}
    env["HIML_HOME"] = str(home)
    env["HIML_CACHE"] = str(home.parent / "cache")
    return env


def command(data: Path) -> list[str]:
    return [HIML, "submit", str(EXAMPLE), "--", "--data", str(data), *OPTIONS]


def epochs_done(log: Path) -> int:
    return sum(1 for line in log.read_text().splitlines() if line.startswith("plain_pytorch: epoch "))


def start_and_kill(cwd: Path, home: Path, data: Path, log: Path, epochs: int, delay: float) -> str:
    """Start an attempt; once it has trained ``epochs`` epochs, SIGKILL it ``delay`` seconds later."""
    with open(log, "w") as sink:
        process = subprocess.Popen(command(data), cwd=cwd, env=environment(home), stdout=sink, stderr=sink)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if "plain_pytorch: training epochs" in log.read_text() and epochs_done(log) >= epochs:
            break
        time.sleep(0.01)
    time.sleep(delay)
    assert process.poll() is None, f"the attempt ended before it could be killed:\n{log.read_text()}"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return log.read_text()


def final_weights(store: RunStore, experiment: str, saved: str) -> tuple[str, dict[str, torch.Tensor]]:
    """The id of the experiment's one run, and the weights in its output file ``saved``."""
    (run,) = store.list_runs(experiment)
    assert run.status == "FINISHED"
    state = torch.load(store.folders(run)[0] / saved, weights_only=True)
    return run.run_id, state["model"]


@pytest.mark.slow
def test_three_sigkills_and_reruns_end_with_the_weights_and_metrics_of_an_uninterrupted_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    calm_home, stormy_home = tmp_path / "calm", tmp_path / "stormy"
    calm = subprocess.run(
        command(data), cwd=tmp_path, env=environment(calm_home), capture_output=True, text=True, timeout=300
    )
    assert calm.returncode == 0, calm.stderr
    assert "resumed" not in calm.stdout

    rng = random.Random(20261201)
    # 1: in the first epoch, before any recovery checkpoint (some batch losses are logged already);
    # 2 and 3: a few epochs into the attempt, at a random moment of an epoch.
    points = [(0, rng.uniform(0.0, 0.05)), (3, rng.uniform(0.0, 0.2)), (2, rng.uniform(0.0, 0.2))]
    texts = [
        start_and_kill(tmp_path, stormy_home, data, tmp_path / f"attempt{attempt}.txt", epochs, delay)
        for attempt, (epochs, delay) in enumerate(points)
    ]
    assert "resumed from the recovery checkpoint" in texts[2]
    final = subprocess.run(
        command(data), cwd=tmp_path, env=environment(stormy_home), capture_output=True, text=True, timeout=300
    )
    assert final.returncode == 0, final.stderr
    assert "resuming interrupted run" in final.stderr + final.stdout
    assert "resumed from the recovery checkpoint" in final.stdout

    calm_store, stormy_store = RunStore(home=calm_home), RunStore(home=stormy_home)
    calm_id, calm_weights = final_weights(calm_store, "plain_pytorch", SAVED)
    stormy_id, stormy_weights = final_weights(stormy_store, "plain_pytorch", SAVED)  # one run, carried on four times
    assert calm_weights.keys() == stormy_weights.keys()
    for key, tensor in calm_weights.items():
        assert torch.equal(tensor, stormy_weights[key]), key

    metrics = stormy_store.get(stormy_id).metrics
    assert set(metrics) == {"train/loss", "train/batch_loss", "epoch"}
    for key in metrics:
        history = stormy_store.metric_history(stormy_id, key)
        steps = [step for step, _ in history]
        assert len(steps) == len(set(steps)), f"{key} was logged twice for the same step"
        assert sorted(history) == sorted(calm_store.metric_history(calm_id, key)), key
    assert len(stormy_store.metric_history(stormy_id, "train/loss")) == EPOCHS
