"""``himl run`` of the SSL containers on a tiny TCGA-CRCk folder: the encoder files, the evaluator's metrics, export.

The runs are tiny (32-pixel tiles, a CIFAR-stem resnet18, batches of 8, one
epoch): they check the plumbing, not learning (tests/ssl/test_learning.py does that).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import timm
import torch
from himl_ssl.encoders import use_cifar_stem
from safetensors.torch import load_file

from himl_kernel.runstore import RunStore, StoredRun

from ..conftest import error_lines, run_himl
from .folders import TINY, crck_folder, himl_env


@dataclass(frozen=True)
class Finished:
    run: StoredRun
    outputs: Path
    root: Path


def _train(model: str, root: Path) -> Finished:
    crck = crck_folder(root / "crck")
    result = run_himl("run", "--model", model, "--local_datasets", f"[{crck}]", *TINY, cwd=root, env=himl_env(root))
    assert result.returncode == 0, result.stderr[-3000:]
    store = RunStore(home=root / "home")
    (run,) = [r for r in store.list_runs(model) if not r.parent_run_id]
    assert run.status == "FINISHED"
    return Finished(run, store.folders(run)[0], root)


@pytest.fixture(scope="module")
def simclr(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    return _train("CRCK_SimCLR", tmp_path_factory.mktemp("simclr"))


@pytest.fixture(scope="module")
def byol(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    return _train("CRCK_BYOL", tmp_path_factory.mktemp("byol"))


def _checkpoint_weights(checkpoint: Path, prefix: str) -> dict[str, torch.Tensor]:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.mark.slow
def test_a_simclr_run_writes_the_encoder_files_and_the_evaluators_metrics(simclr: Finished) -> None:
    description = json.loads((simclr.outputs / "encoder.json").read_text())
    assert description["architecture"] == "cifar_resnet18" and description["timm_name"] == "resnet18"
    assert description["cifar_stem"] is True and description["feature_size"] == 512
    assert description["input_size"] == 32 and description["method"] == "SimCLR"
    weights = load_file(simclr.outputs / "encoder.safetensors")
    network = timm.create_model("resnet18", pretrained=False, num_classes=0)
    use_cifar_stem(network)
    network.load_state_dict(weights)  # timm's own key names, every one of them
    expected = _checkpoint_weights(simclr.outputs / "checkpoints" / "last.ckpt", "encoder.")
    assert set(expected) == set(weights)
    for key, value in expected.items():
        torch.testing.assert_close(weights[key], value)
    for name in ("AreaUnderRocCurve", "AreaUnderPRCurve", "AccuracyAtThreshold05"):
        assert 0 <= simclr.run.metrics[f"ssl_online_evaluator/val/{name}"] <= 1
    assert "simclr/train/loss" in simclr.run.metrics and "ssl_online_evaluator/train/loss" in simclr.run.metrics


@pytest.mark.slow
def test_export_encoder_of_a_checkpoint_gives_the_same_files(simclr: Finished, tmp_path: Path) -> None:
    checkpoint = simclr.outputs / "checkpoints" / "last.ckpt"
    result = run_himl("ssl", "export-encoder", str(checkpoint), "--output", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    exported = load_file(tmp_path / "encoder.safetensors")
    written = load_file(simclr.outputs / "encoder.safetensors")
    assert set(exported) == set(written)
    for key, value in written.items():
        torch.testing.assert_close(exported[key], value)
    assert json.loads((tmp_path / "encoder.json").read_text()) == json.loads(
        (simclr.outputs / "encoder.json").read_text()
    )


@pytest.mark.slow
def test_a_byol_run_exports_the_online_encoder(byol: Finished) -> None:
    checkpoint = byol.outputs / "checkpoints" / "last.ckpt"
    online = _checkpoint_weights(checkpoint, "byol.encoder.")
    target = _checkpoint_weights(checkpoint, "byol.target_encoder.")
    exported = load_file(byol.outputs / "encoder.safetensors")
    assert json.loads((byol.outputs / "encoder.json").read_text())["method"] == "BYOL"
    for key, value in online.items():
        torch.testing.assert_close(exported[key], value)
    assert any(not torch.equal(online[k], target[k]) for k in online if online[k].is_floating_point())


def test_export_encoder_of_a_file_that_is_no_ssl_checkpoint_is_one_line(tmp_path: Path) -> None:
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"layer.weight": torch.ones(1)}}, other)
    result = run_himl("ssl", "export-encoder", str(other), cwd=tmp_path)
    assert result.returncode != 0
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and "not a checkpoint of a himl-ssl run" in errors[0], result.stderr


@pytest.mark.slow
def test_an_ssl_run_without_a_dataset_is_one_line(tmp_path: Path) -> None:
    result = run_himl("run", "--model", "CRCK_SimCLR", *TINY, cwd=tmp_path, env=himl_env(tmp_path))
    assert result.returncode != 0
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and "CRCK_SimCLR needs a dataset" in errors[0], result.stderr


@pytest.mark.slow
def test_cpaths_ssl_configuration_trains_on_the_runs_exported_encoder(simclr: Finished) -> None:
    """``--encoder_weights RUN_ID``: the MIL run builds the CIFAR-stem resnet18 from the exported file."""
    import hashlib

    root = simclr.root
    result = run_himl(
        "run", "--model", "TcgaCrckSSLMIL", "--local_datasets", f"[{root / 'crck'}]",
        "--encoder_weights", simclr.run.run_id, "--max_epochs", "1", "--pl_num_sanity_val_steps", "0",
        "--max_bag_size", "2", "--batch_size", "4", "--figures", "false",
        cwd=root, env=himl_env(root),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    digest = hashlib.sha256((simclr.outputs / "encoder.safetensors").read_bytes()).hexdigest()[:16]
    # the feature cache is keyed by the encoder's architecture and the digest of the file its weights came from
    cached = [p.name for p in (root / "cache" / "cpath_features").iterdir()]
    assert cached == [f"cifar_resnet18-{digest}"]
