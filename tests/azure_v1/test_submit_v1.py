"""Submitting through azureml-core for real, against the v1 control-plane stand-in.

The SDK builds and sends every request itself (workspace, discovery, compute,
snapshot, experiment, run start, HyperDrive); the tests read the bodies the
stand-in recorded.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from himl_kernel.cli.main import main
from tests.azure_v1.control_plane_v1 import V1ControlPlane

CONDA = "name: job\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip\n  - pip: [numpy]\n"


@pytest.fixture
def project(v1_workspace_dir: Path) -> Path:
    (v1_workspace_dir / "environment.yml").write_text(CONDA)
    (v1_workspace_dir / "train.py").write_text("print('hello')\n")
    return v1_workspace_dir


def test_a_two_node_cross_validation_is_submitted_to_hyperdrive(
    project: Path, v1_plane: V1ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--model", "HelloWorld", "--strictly_aml_v1", "--cluster", "gpu-nc24", "--num_nodes", "2"]
    code = main([*args, "--crossval_count", "3", "--docker_shm_size", "16g", "--no-wait"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert v1_plane.unanswered == []
    (request,) = v1_plane.sent("POST", r"^/hyperdrive/v1\.0/")
    config = request.body["config"]
    assert config["generator_config"] == {
        "name": "GRID",
        "parameter_space": {"crossval_index": ["choice", [[0, 1, 2]]]},
    }
    assert config["primary_metric_config"] == {"name": "val/loss", "goal": "minimize"}
    assert config["max_total_jobs"] == 3 and config["name"] == "HelloWorld"
    definition = config["platform_config"]["Definition"]
    run = definition["Overrides"]
    assert run["target"] == "gpu-nc24" and run["nodeCount"] == 2
    assert run["command"] == ["python", "-m", "himl_kernel", "run", "--model", "HelloWorld", "--crossval_count", "3"]
    assert run["communicator"] == "IntelMpi" and run["mpi"] == {"processCountPerNode": 1, "nodeCount": 2}
    assert run["docker"]["useDocker"] is True and run["docker"]["shmSize"] == "16g"
    assert run["environment"]["name"].startswith("himl-v1-")
    assert run["environment"]["python"]["condaDependencies"]["dependencies"][:2] == ["python=3.11", "pip"]
    assert run["environmentVariables"] == {"HIML_WIRE_FORMAT": "1", "HIML_BACKEND": "azureml-v1"}
    # the snapshot that HyperDrive's trials run from holds the project's files
    (snapshot,) = v1_plane.snapshots.values()
    assert definition["SnapshotId"] in v1_plane.snapshots
    assert {"train.py", "environment.yml", "config.json"} <= set(snapshot["DirTreeNode"]["children"])
    parent = (project / "most_recent_run.txt").read_text()
    assert parent.startswith("HD_") and parent in v1_plane.runs
    assert f"follow it at {v1_plane.url}/runs/{parent}" in err


def test_a_script_is_started_as_one_run_and_waited_for(
    project: Path, v1_plane: V1ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["submit", "train.py", "--compute", "azureml-v1", "--cluster", "cpu-small", "--", "--n", "3"])
    err = capsys.readouterr().err
    assert code == 0, err
    (start,) = v1_plane.sent("POST", r"/execution/v1\.0/.*/experiments/[^/]+/snapshotrun$")
    run_id = start.query["runId"][0]
    assert re.fullmatch(r"train_\d{10}_[0-9a-f]{8}", run_id), run_id  # a v1 run id: experiment_time_hash
    configuration = start.body["Configuration"]
    assert configuration["target"] == "cpu-small"
    assert configuration["command"] == "python train.py --n 3"
    assert start.body["SnapshotId"] in v1_plane.snapshots
    assert (project / "most_recent_run.txt").read_text() == run_id
    assert v1_plane.runs[run_id]["status"] == "Completed"


def test_an_unknown_cluster_is_one_line_naming_the_known_ones(
    project: Path, v1_plane: V1ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--model", "HelloWorld", "--strictly_aml_v1", "--cluster", "gpu-typo"])
    err = capsys.readouterr().err
    assert code != 0
    (line,) = [line for line in err.splitlines() if line.startswith("himl: error:")]
    assert "'gpu-typo'" in line and "cpu-small, gpu-nc24" in line
    assert v1_plane.sent("POST", r"/snapshotrun$|/hyperdrive/") == []
