"""Inside a simulated Amulet job: hi-ml's example trainer, datasets through the mount, who claims the job.

An Amulet job is an AzureML job started by Amulet. It sets AzureML's variables (``AZUREML_RUN_ID``,
``MLFLOW_TRACKING_URI`` and ``MLFLOW_RUN_ID`` of the job's run), Amulet's own (``AZUREML_ARM_PROJECT_NAME``,
``AZURE_ML_INPUT_OUTPUT``, ``AMLT_OUTPUT_DIR``), the code folder (``SNAPSHOT_DIR``), ``RANK``, the mount of
each storage entry (``AZUREML_DATAREFERENCE_<name>``), and what the configuration's ``submit_args.env`` says.
A local MLflow store stands in for the job's tracking server, with the job's run created in it beforehand.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from himl_amulet.config import AmuletSettings, build_config
from himl_amulet.injob import run_info_from_environ
from himl_amulet.schema import validate_config

from himl_kernel.datasets import DatasetConfig
from himl_kernel.job import Compute, Entry, JobSpec
from himl_kernel.snapshot import Snapshot

from ..conftest import HIML

TRAINER = Path(__file__).with_name("amulet_trainer.py")


def _clean_environ(home: Path) -> dict[str, str]:
    """This process's environment without any run a test runner or an outer job left in it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HIML_", "MLFLOW_", "AZUREML_", "AMLT_"))}
    env.pop("RANK", None)
    env["HIML_HOME"] = str(home)
    return env


def _job_env(document: dict[str, Any]) -> dict[str, str]:
    jobs = document.get("jobs") or [document["search"]["job_template"]]
    return {str(k): str(v) for k, v in jobs[0]["submit_args"]["env"].items()}


def _amulet_variables(root: Path, tracking_uri: str, run_id: str) -> dict[str, str]:
    return {
        "AZUREML_RUN_ID": "sing-job-1",
        "AZUREML_ARM_PROJECT_NAME": "amulet-proj",
        "AZURE_ML_INPUT_OUTPUT": str(root / "io"),
        "AMLT_OUTPUT_DIR": str(root / "amlt_output"),
        "SNAPSHOT_DIR": str(root / "code"),
        "AZUREML_DATAREFERENCE_data": str(root / "mnt" / "data"),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_RUN_ID": run_id,
        "RANK": "0",
    }


def _job_run(tracking_uri: str) -> str:
    """The MLflow run AzureML creates for the job before it starts."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("amulet-example")
    return client.create_run(experiment).info.run_id


@pytest.mark.slow
def test_hi_ml_example_trainer_runs_in_a_simulated_amulet_job(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    shutil.copy(TRAINER, code / "amulet_script.py")
    env = _clean_environ(tmp_path / "home")
    submitted = subprocess.run(
        [HIML, "submit", "amulet_script.py", "--compute", "amulet", "--amulet-target", "vc1", "--dry-run"],
        cwd=code, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    document = yaml.safe_load(submitted.stdout)
    (job,) = document["jobs"]
    assert job["command"] == ["python amulet_script.py"]

    (tmp_path / "mnt" / "data").mkdir(parents=True)
    (tmp_path / "amlt_output").mkdir()
    tracking_uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    run_id = _job_run(tracking_uri)
    job_env = {**env, **_job_env(document), **_amulet_variables(tmp_path, tracking_uri, run_id)}
    done = subprocess.run(
        [sys.executable, *job["command"][0].split()[1:]],
        cwd=code, env=job_env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    (line,) = [x for x in done.stdout.splitlines() if x.startswith("AMULET_ENVIRONMENT ")]
    seen = json.loads(line.removeprefix("AMULET_ENVIRONMENT "))
    assert seen["is_amulet_job"] is True and seen["project"] == "amulet-proj"
    assert seen["output_dir"] == str(tmp_path / "amlt_output")
    assert seen["data_dir"] == str(tmp_path / "mnt" / "data") and seen["working_dir"] == str(code)
    assert f"DATA {tmp_path / 'mnt' / 'data'}" in done.stdout
    assert "RANK after prepare_amulet_job: None" in done.stdout

    # Outputs land where hi-ml's example says: one file in each output folder, TensorBoard in the Amulet one.
    assert (tmp_path / "amlt_output" / "amulet_output.txt").is_file()
    assert (code / "azureml_output.txt").is_file()
    assert list((tmp_path / "amlt_output" / "Lightning").glob("events.out.tfevents.*"))
    # himl's RunInfo for the job put its logs folder inside the Amulet output folder.
    assert (tmp_path / "amlt_output" / "logs").is_dir()

    # Metrics went to the job's MLflow run, the one AzureML created, not to a run of their own.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    assert len(client.get_metric_history(run_id, "loss_epoch")) == 2  # one per epoch
    assert len(client.get_metric_history(run_id, "loss_step")) == 32  # 16 rows, batch of 1, two epochs
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1


def _dataset_job(tmp_path: Path) -> JobSpec:
    return JobSpec(
        entry=Entry("script", "train.py", ["--epochs", "1"]),
        snapshot=Snapshot(tmp_path),
        compute=Compute(backend="amulet"),
        input_datasets=[DatasetConfig(name="panda"), DatasetConfig(name="tcga/crck")],
        output_datasets=[DatasetConfig(name="panda_features")],
        experiment="mil",
    )


def test_datasets_are_mounted_and_resolve_under_the_mount_inside_the_job(tmp_path: Path) -> None:
    settings = AmuletSettings(target="vc1", storage_account="mystorage", container="datasets", mount_dir="/mnt/d")
    document = build_config(_dataset_job(tmp_path), settings)
    validate_config(yaml.safe_load(yaml.safe_dump(document)))
    assert document["storage"] == {
        "data": {"storage_account_name": "mystorage", "container_name": "datasets", "mount_dir": "/mnt/d"}
    }
    env = _job_env(document)
    assert json.loads(env["HIML_AMULET_INPUTS"]) == ["panda", "tcga/crck"]

    # Inside the job Amulet mounts the container and says where in AZUREML_DATAREFERENCE_data.
    mount = tmp_path / "mounted"
    inside = {**env, **_amulet_variables(tmp_path, "", "")}
    inside["AZUREML_DATAREFERENCE_data"] = str(mount)
    info = run_info_from_environ(inside)
    assert info is not None and info.backend == "amulet"
    assert info.input_datasets == [mount / "panda", mount / "tcga" / "crck"]
    assert info.output_datasets == [mount / "panda_features"]
    assert info.output_folder == tmp_path / "amlt_output"
    # Without Amulet's variable, the mount folder the configuration named is used.
    del inside["AZUREML_DATAREFERENCE_data"]
    assert run_info_from_environ(inside).input_datasets[0] == Path("/mnt/d/panda")  # type: ignore[union-attr]


def test_datasets_without_a_storage_account_are_one_line(tmp_path: Path) -> None:
    from himl_kernel.errors import HimlError

    with pytest.raises(HimlError, match="--amulet-storage-account NAME"):
        build_config(_dataset_job(tmp_path), AmuletSettings(target="vc1"))


def test_an_amulet_job_is_claimed_by_amulet_with_both_azureml_plugins_installed(tmp_path: Path) -> None:
    from himl_azure_v1.injob import run_info_from_environ as v1_detects
    from himl_azure_v2.injob import run_info_from_environ as v2_detects

    from himl_kernel.plugins import build_host

    host = build_host()
    installed = {e.name for e in host.compute_backends}
    assert {"amulet", "azureml", "azureml-v1"} <= installed
    amulet = {
        **_amulet_variables(tmp_path, "", ""),
        # what an SDK v1 run also sets: v1's own detection must still leave the job alone
        "AZUREML_ARM_SUBSCRIPTION": "sub",
        "AZUREML_ARM_RESOURCEGROUP": "rg",
        "AZUREML_ARM_WORKSPACE_NAME": "ws",
    }
    marked = {**amulet, "HIML_BACKEND": "amulet"}
    assert v1_detects(marked) is None and v2_detects(marked) is None
    for environ in (marked, amulet):  # himl's marker, or a hand-written Amulet config without it
        detected = host.detect_run(environ)
        assert detected is not None and detected.backend == "amulet"
    for other in ("azureml", "azureml-v1"):  # an AzureML job of the other plugins is not Amulet's
        detected = host.detect_run({**amulet, "HIML_BACKEND": other})
        assert detected is not None and detected.backend == other


def test_multi_node_variables_come_from_azureml_mpi_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    from himl_amulet.himl_compat import prepare_amulet_job, set_environment_variables_for_multi_node

    from himl_kernel.errors import HimlError

    for name in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "AZ_BATCHAI_MPI_MASTER_NODE", "MASTER_IP"):
        monkeypatch.setenv(name, "")  # recorded, so that what the helper sets is undone after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv("AZ_BATCH_MASTER_NODE", "10.0.0.4:6000")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "1")
    set_environment_variables_for_multi_node()
    assert (os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"], os.environ["NODE_RANK"]) == ("10.0.0.4", "6000", "1")

    monkeypatch.delenv("AZ_BATCH_MASTER_NODE")
    monkeypatch.delenv("MASTER_PORT")
    monkeypatch.setenv("AZ_BATCHAI_MPI_MASTER_NODE", "node0")
    set_environment_variables_for_multi_node()
    assert (os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"]) == ("node0", "6105")  # hi-ml's default port

    monkeypatch.setenv("AZ_BATCH_MASTER_NODE", "10.0.0.4:port")
    with pytest.raises(HimlError, match=r"AZ_BATCH_MASTER_NODE='10.0.0.4:port' is not HOST:PORT"):
        set_environment_variables_for_multi_node()

    monkeypatch.setenv("RANK", "3")
    prepare_amulet_job()
    assert "RANK" not in os.environ
