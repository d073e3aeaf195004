"""Preemption: HelloWorld killed with SIGKILL five times and rerun ends as if never interrupted."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from himl_kernel.lightning.checkpointing import RECOVERY_PATTERN

from ..conftest import HIML
from .conftest import Store

#: long enough that five kills, each at most MAX_DELAY_S after the attempt's first recovery checkpoint,
#: leave epochs to train (an epoch of HelloWorld takes well over 0.02 s)
EPOCHS = 60
MAX_DELAY_S = 0.4
KILLS = 5
COMMAND = ("run", "--model", "HelloWorld", "--max_epochs", str(EPOCHS), "--pl_deterministic")
DETERMINISTIC = ("val/loss", "train/loss_epoch", "learning_rate", "test/loss", "test/mae")


def recovery_names(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.ckpt") if RECOVERY_PATTERN.fullmatch(p.name)} if folder.is_dir() else set()


def start_and_kill(store: Store, log: Path, rng: random.Random, outputs: Path | None) -> tuple[Path, str]:
    """Start the command, wait for this attempt's first recovery checkpoint, SIGKILL it a random moment later."""
    before = recovery_names(outputs / "checkpoints") if outputs else set()
    with open(log, "w") as sink:
        process = subprocess.Popen([HIML, *COMMAND], cwd=store.cwd, env=store.env(), stdout=sink, stderr=sink)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if outputs is None:
            found = re.search(r"outputs in (\S+)", log.read_text())
            outputs = Path(found.group(1)) if found else None
        if outputs is not None and recovery_names(outputs / "checkpoints") - before:
            break
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, MAX_DELAY_S))
    assert process.poll() is None, f"the run ended before it could be killed:\n{log.read_text()}"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert outputs is not None
    return outputs, log.read_text()


@pytest.mark.slow
def test_five_sigkills_and_reruns_end_with_the_weights_and_metrics_of_an_uninterrupted_run(tmp_path: Path) -> None:
    calm = Store(tmp_path / "calm_home", tmp_path)
    done = calm.himl(*COMMAND)
    assert done.returncode == 0, done.stderr
    reference = calm.newest()

    stormy = Store(tmp_path / "stormy_home", tmp_path)
    rng = random.Random(20240501)
    outputs: Path | None = None
    for attempt in range(KILLS):
        outputs, text = start_and_kill(stormy, tmp_path / f"attempt{attempt}.txt", rng, outputs)
        if attempt > 0:
            assert "resuming from recovery checkpoint" in text
    assert outputs is not None
    final = stormy.himl(*COMMAND)
    assert final.returncode == 0, final.stderr
    assert "resuming interrupted run" in final.stdout and "resuming from recovery checkpoint" in final.stdout

    (run,) = stormy.runs.list_runs("HelloWorld")  # every rerun carried on with the same run
    assert run.status == "FINISHED" and stormy.outputs(run) == outputs

    calm_weights = torch.load(calm.outputs(reference) / "checkpoints" / "last.ckpt", weights_only=False)
    stormy_weights = torch.load(outputs / "checkpoints" / "last.ckpt", weights_only=False)
    assert calm_weights["epoch"] == stormy_weights["epoch"] == EPOCHS - 1
    for key, tensor in calm_weights["state_dict"].items():
        assert torch.equal(tensor, stormy_weights["state_dict"][key]), key

    for key in sorted(run.metrics):
        steps = [step for step, _ in stormy.runs.metric_history(run.run_id, key)]
        assert len(steps) == len(set(steps)), f"{key} was logged twice for the same step"
    for key in DETERMINISTIC:
        assert stormy.runs.metric_history(run.run_id, key) == calm.runs.metric_history(reference.run_id, key), key
