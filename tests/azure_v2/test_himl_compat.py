"""A hi-ml script runs with only its import changed: here, and with --azureml."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from azure.ai.ml.entities import Data
from azure.storage.blob import BlobServiceClient
from himl_azure_v2.transfer import upload_to_datastore
from himl_azure_v2.workspace import Workspace

from himl_kernel.cli.main import main
from tests.azure_v2.conftest import PLANTED_SECRET, staged_files
from tests.azure_v2.control_plane import ControlPlane
from tests.conftest import run_script

HIML_STYLE_SCRIPT = """
from pathlib import Path

from himl_azure_v2 import submit_to_azure_if_needed

run_info = submit_to_azure_if_needed(
    compute_cluster_name="gpu-nc24",
    conda_environment_file="environment.yml",
    input_datasets=["x"],
    default_datastore="workspaceblobstore",
    output_datasets=["x_out"],
    environment_variables={"HIML_STYLE": "1"},
    tags={"origin": "hi-ml"},
    docker_shm_size="8g",
    max_run_duration="30m",
)
folder = run_info.input_datasets[0]
Path("seen.txt").write_text(",".join(sorted(p.name for p in folder.iterdir())))
"""


@pytest.fixture
def himl_script(workspace_dir: Path, control_plane: ControlPlane, fresh_containers: BlobServiceClient) -> Path:
    (workspace_dir / "environment.yml").write_text("name: t\ndependencies:\n  - python=3.10\n")
    script = workspace_dir / "hi_ml_script.py"
    script.write_text(HIML_STYLE_SCRIPT)
    data = workspace_dir.parent / "x_source"
    data.mkdir(exist_ok=True)
    for name in ("a.csv", "b.csv"):
        (data / name).write_text(name)
    upload_to_datastore(data, "datasets/x", workspace=Workspace.from_config(), show_progress=False)
    control_plane.data.append(
        Data(name="x", version="1", type="uri_folder", path="azureml://datastores/workspaceblobstore/paths/datasets/x/")
    )
    return script


def test_hi_ml_script_runs_here_with_its_dataset_downloaded(
    himl_script: Path, control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_script(himl_script, monkeypatch=monkeypatch) == 0
    assert Path("seen.txt").read_text() == "a.csv,b.csv"
    assert control_plane.submitted == []


def test_hi_ml_script_with_azureml_flag_submits_the_expected_job(
    himl_script: Path, control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    assert run_script(himl_script, "--epochs", "3", "--azureml", monkeypatch=monkeypatch) == 0
    assert not Path("seen.txt").exists()
    (job,) = control_plane.submitted
    rest = job.rest["properties"]
    assert rest["jobType"] == "Command" and rest["computeId"] == "gpu-nc24"
    assert rest["command"] == "python hi_ml_script.py --epochs 3"
    assert rest["inputs"] == {"INPUT_0": {"uri": "azureml:x@latest", "mode": "Download", "jobInputType": "uri_folder"}}
    assert rest["outputs"] == {
        "OUTPUT_0": {
            "uri": "azureml://datastores/workspaceblobstore/paths/x_out/",
            "mode": "ReadWriteMount",
            "jobOutputType": "uri_folder",
        }
    }
    assert rest["environmentVariables"] == {"HIML_STYLE": "1", "HIML_WIRE_FORMAT": "1", "HIML_BACKEND": "azureml"}
    assert rest["resources"]["shmSize"] == "8g" and rest["limits"]["timeout"] == "PT30M"
    assert rest["experimentName"] == "hi_ml_script" and rest["tags"]["origin"] == "hi-ml"
    assert "himl: submitted to azureml: run himl_test_job_1 https://ml.azure.com/runs/" in capsys.readouterr().err


def test_inside_the_job_the_script_gets_azuremls_folders(
    himl_script: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mounted = tmp_path / "mnt" / "INPUT_0"
    mounted.mkdir(parents=True)
    (mounted / "only.csv").write_text("1")
    monkeypatch.setenv("AZUREML_RUN_ID", "job_in_azure")
    monkeypatch.setenv("AZURE_ML_INPUT_INPUT_0", str(mounted))
    monkeypatch.setenv("HIML_LOGGERS", "")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'job.db'}")
    assert run_script(himl_script, "--azureml", monkeypatch=monkeypatch) == 0
    assert Path("seen.txt").read_text() == "only.csv"


def test_no_credential_in_logs_tags_snapshot_or_dry_run(
    himl_script: Path, control_plane: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    root = himl_script.parent
    (root / ".env").write_text(f"STORAGE_KEY={PLANTED_SECRET}\n")
    (root / ".env.local").write_text(f"TOKEN={PLANTED_SECRET}\n")
    base = ["submit", "hi_ml_script.py", "--compute", "azureml", "--cluster", "gpu-nc24", "--conda-file",
            "environment.yml", "--tag", "who=me", "--input-dataset", "x"]  # fmt: skip
    assert main(["--verbose", *base, "--dry-run"]) == 0
    assert main(["--verbose", *base, "--no-wait"]) == 0
    assert main(["azure", "upload", str(root / "environment.yml"), "envs"]) == 0
    printed = capsys.readouterr()
    assert PLANTED_SECRET not in printed.out + printed.err
    (job,) = control_plane.submitted
    assert PLANTED_SECRET not in json.dumps(job.rest) + json.dumps(job.as_dict)
    staged = Path(job.rest["properties"]["codeId"])
    names = staged_files(staged)
    assert ".env" not in names and ".env.local" not in names and "hi_ml_script.py" in names
    assert all(PLANTED_SECRET.encode() not in (staged / n).read_bytes() for n in names)


def test_after_submission_receives_the_submission_and_wait_streams_the_logs(
    himl_script: Path, control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    from himl_azure_v2 import submit_to_azure_if_needed

    seen: list[object] = []
    monkeypatch.setattr(sys, "argv", [str(himl_script)])
    with pytest.raises(SystemExit) as done:
        submit_to_azure_if_needed(
            compute_cluster_name="cpu-small",
            conda_environment_file="environment.yml",
            submit_to_azureml=True,
            wait_for_completion=True,
            num_nodes=2,
            after_submission=seen.append,
        )
    assert done.value.code == 0
    (submission,) = seen
    assert getattr(submission, "run_id") == "himl_test_job_1"  # noqa: B009
    assert control_plane.streamed == ["himl_test_job_1"]
    # hi-ml's run recovery file, where the script was started, for himl-tb and himl-download
    assert (Path.cwd() / "most_recent_run.txt").read_text(encoding="utf-8") == "himl_test_job_1"
    rest = control_plane.submitted[0].rest["properties"]
    assert rest["computeId"] == "cpu-small" and rest["resources"]["instanceCount"] == 2
    # two nodes and no processes-per-node setting: hi-ml's MPI job of one process per node
    assert rest["distribution"] == {"processCountPerInstance": 1, "distributionType": "Mpi"}
