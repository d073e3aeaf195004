"""``himl run`` of SSLContainer on two gloo processes with a separate labelled set: metrics and preemption.

Lightning's DistributedSampler pads the 7 labelled validation images to 8, so
one image would be scored twice; the evaluator's metrics must equal those of
one process on the 7. Then the same run is killed (SIGKILL, both processes)
after its first recovery checkpoint and rerun: it ends with the weights and
optimizer state, the linear evaluator's included, of the uninterrupted run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from himl_ssl.data import ImageDataset, find_images
from himl_ssl.encoders import create_encoder
from himl_ssl.module import IMAGENET_MEAN, IMAGENET_STD
from torchmetrics.functional.classification import binary_accuracy, binary_auroc, binary_average_precision

from himl_kernel.runstore import RunStore, StoredRun

from ..conftest import HIML, JOB_VARIABLES, run_himl
from .folders import TINY, crck_folder, himl_env, labelled_folder

EPOCHS = 3


@dataclass(frozen=True)
class Folders:
    root: Path
    ssl: Path
    labelled: Path

    def command(self) -> list[str]:
        return [
            "run", "--model", "SSLContainer", "--local_datasets", f"[{self.ssl},{self.labelled}]", *TINY,
            "--max_epochs", str(EPOCHS), "--devices", "2", "--strategy", "ddp", "--autosave_every_n_val_epochs", "1",
        ]  # fmt: skip


@dataclass(frozen=True)
class Finished:
    run: StoredRun
    outputs: Path


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Folders:
    root = tmp_path_factory.mktemp("ssl_ddp")
    return Folders(root, crck_folder(root / "crck"), labelled_folder(root / "labelled"))


def _finished(home: Path) -> Finished:
    store = RunStore(home=home)
    (run,) = [r for r in store.list_runs("SSLContainer") if not r.parent_run_id]
    assert run.status == "FINISHED"
    return Finished(run, store.folders(run)[0])


@pytest.fixture(scope="module")
def calm(folders: Folders) -> Finished:
    root = folders.root / "calm"
    root.mkdir()
    result = run_himl(*folders.command(), cwd=root, env=himl_env(root), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stdout + result.stderr
    return _finished(root / "home")


def _one_process_scores(checkpoint: Path, labelled: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluator's scores of the labelled validation images, computed here, in one process, in a plain loop."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    encoder, size = create_encoder("cifar_resnet18")
    encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")})
    head = torch.nn.Linear(size, 2)
    head.load_state_dict({k.removeprefix("linear_head."): v for k, v in state.items() if k.startswith("linear_head.")})
    dataset = ImageDataset(find_images(labelled, "auto", "val"), 32)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))]).float() / 255
    labels = torch.tensor([dataset[i][1] for i in range(len(dataset))])
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    encoder.eval()
    with torch.no_grad():
        scores = torch.softmax(head(encoder((images - mean) / std)), dim=1)[:, 1]
    return scores, labels


def _metrics(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    return {
        "AreaUnderRocCurve": float(binary_auroc(scores, labels)),
        "AreaUnderPRCurve": float(binary_average_precision(scores, labels)),
        "AccuracyAtThreshold05": float(binary_accuracy(scores, labels)),
    }


@pytest.mark.slow
def test_two_processes_score_each_labelled_image_once_as_one_process_does(calm: Finished, folders: Folders) -> None:
    scores, labels = _one_process_scores(calm.outputs / "checkpoints" / "last.ckpt", folders.labelled)
    assert len(labels) == 7  # two processes: Lightning's sampler would pad it to 8
    expected = _metrics(scores, labels)
    for name, value in expected.items():
        assert calm.run.metrics[f"ssl_online_evaluator/val/{name}"] == pytest.approx(value, abs=1e-6), name
    # the control: with the padded sampler's repeat of the first image, the metrics differ, so the test can fail
    padded = _metrics(torch.cat([scores, scores[:1]]), torch.cat([labels, labels[:1]]))
    assert any(abs(padded[name] - expected[name]) > 1e-4 for name in expected)


def _recoveries(outputs: Path | None) -> list[Path]:
    return sorted((outputs / "checkpoints").glob("recovery-epoch=*.ckpt")) if outputs is not None else []


def _start_and_kill(folders: Folders, root: Path) -> Path:
    """Start the run, SIGKILL its process group (both processes) as soon as its first recovery checkpoint exists."""
    env = {k: v for k, v in os.environ.items() if k not in JOB_VARIABLES} | himl_env(root)
    log = root / "killed.txt"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [HIML, *folders.command()], cwd=root, env=env, stdout=sink, stderr=sink, start_new_session=True
        )
    outputs: Path | None = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and not _recoveries(outputs):
        if outputs is None:
            found = re.search(r"outputs in (\S+)", log.read_text())
            outputs = Path(found.group(1)) if found else None
        time.sleep(0.02)
    assert process.poll() is None, f"the run ended before it could be killed:\n{log.read_text()[-3000:]}"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert outputs is not None and not (outputs / "checkpoints" / f"recovery-epoch={EPOCHS - 1:04d}.ckpt").exists()
    return outputs


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_the_evaluator_and_ends_as_the_uninterrupted_run(
    calm: Finished, folders: Folders
) -> None:
    root = folders.root / "stormy"
    root.mkdir()
    outputs = _start_and_kill(folders, root)
    result = run_himl(*folders.command(), cwd=root, env=himl_env(root), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from recovery checkpoint" in result.stdout
    stormy = _finished(root / "home")
    assert stormy.outputs == outputs

    calm_state = torch.load(calm.outputs / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    stormy_state = torch.load(outputs / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert calm_state["global_step"] == stormy_state["global_step"] > 0
    assert any(k.startswith("linear_head.") for k in calm_state["state_dict"])
    for key, tensor in calm_state["state_dict"].items():
        assert torch.equal(tensor, stormy_state["state_dict"][key]), key
    # the optimizer's second group is the evaluator's: its Adam moments and step count carried over the kill
    calm_optimizer, stormy_optimizer = calm_state["optimizer_states"][0], stormy_state["optimizer_states"][0]
    assert calm_optimizer["param_groups"] == stormy_optimizer["param_groups"]
    head_ids = calm_optimizer["param_groups"][1]["params"]
    for index in head_ids:
        for name, value in calm_optimizer["state"][index].items():
            assert torch.equal(value, stormy_optimizer["state"][index][name]), (index, name)
    assert float(calm_optimizer["state"][head_ids[0]]["step"]) == calm_state["global_step"]
    for name in ("AreaUnderRocCurve", "AreaUnderPRCurve", "AccuracyAtThreshold05"):
        key = f"ssl_online_evaluator/val/{name}"
        assert stormy.run.metrics[key] == calm.run.metrics[key], key
