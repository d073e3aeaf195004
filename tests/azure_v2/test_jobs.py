"""JobSpecs become azure-ai-ml command and sweep jobs; what the SDK would send is recorded."""

from __future__ import annotations

import argparse
from pathlib import Path

import himl_azure_v2.plugin
import pytest
import yaml
from azure.ai.ml import load_job
from azure.ai.ml.entities import Data
from himl_azure_v2.backend import AzureMLBackend
from himl_azure_v2.code_snapshot import stage_snapshot
from himl_azure_v2.jobs import plain

from himl_kernel.cli.main import main
from himl_kernel.cli.run_cmd import run_run
from himl_kernel.errors import HimlError
from himl_kernel.job import Compute, Entry, Environment, JobSpec
from himl_kernel.snapshot import Snapshot
from himl_kernel.testing import fresh_host
from tests.azure_v2.conftest import staged_files
from tests.azure_v2.control_plane import ControlPlane
from tests.azure_v2.models import TestModels

CONDA = "name: train\nchannels: [conda-forge]\ndependencies:\n  - python=3.10\n  - pip\n  - pip: [numpy]\n"


@pytest.fixture
def project(workspace_dir: Path) -> Path:
    (workspace_dir / "environment.yml").write_text(CONDA)
    (workspace_dir / "train.py").write_text("print('training')\n")
    (workspace_dir / "src").mkdir()
    (workspace_dir / "src" / "model.py").write_text("x = 1\n")
    (workspace_dir / "data_cache").mkdir()
    (workspace_dir / "data_cache" / "huge.bin").write_bytes(b"0" * 1000)
    (workspace_dir / ".amlignore").write_text("data_cache/\n*.log\n")
    (workspace_dir / "run.log").write_text("noise")
    return workspace_dir


def add_assets(plane: ControlPlane) -> None:
    plane.data += [
        Data(name="mnist", version="3", type="uri_folder", path="azureml://datastores/workspaceblobstore/paths/mnist/"),
        Data(name="labels", version="2", type="uri_folder", path="azureml://datastores/labelstore/paths/labels/"),
    ]


def test_crossval_model_with_datasets_on_two_nodes_is_one_sweep_job(
    project: Path, control_plane: ControlPlane, capsys
) -> None:
    add_assets(control_plane)
    host = fresh_host(himl_azure_v2.plugin, TestModels(), names=["azure_v2", "test-models"])
    args = argparse.Namespace(
        model="TwoInputsCV",
        config=None,
        extra_args=[
            "--compute", "azureml", "--cluster", "gpu-nc24", "--num-nodes", "2", "--shm-size", "100g",
            "--env", "HIML_TEST=1", "--tag", "team=pathology", "--experiment", "cv-exp",
            "--display-name", "cv-run", "--max-run-duration", "2h", "--no-wait",
            "--crossval_count", "3", "--learning_rate", "0.01",
        ],
    )  # fmt: skip
    assert run_run(args, host) == 0

    assert len(control_plane.submitted) == 1
    rest = control_plane.submitted[0].rest["properties"]
    assert rest["jobType"] == "Sweep"
    assert rest["computeId"] == "gpu-nc24"
    assert rest["experimentName"] == "cv-exp"
    assert rest["displayName"] == "cv-run"
    assert rest["objective"] == {"goal": "minimize", "primaryMetric": "val/loss"}
    assert rest["samplingAlgorithm"] == {"samplingAlgorithmType": "Grid"}
    assert rest["searchSpace"] == {"crossval_index": ["choice", [[0, 1, 2]]]}
    assert rest["limits"] == {  # no maxConcurrentTrials: the service runs as many folds at once as it can
        "maxTotalTrials": 3,
        "timeout": "PT2H",
        "jobLimitsType": "Sweep",
    }
    assert rest["inputs"] == {
        "INPUT_0": {"uri": "azureml:mnist@latest", "mode": "ReadOnlyMount", "jobInputType": "uri_folder"},
        "INPUT_1": {"uri": "azureml:labels:2", "mode": "Download", "jobInputType": "uri_folder"},
    }
    assert rest["outputs"] == {
        "OUTPUT_0": {
            "uri": "azureml://datastores/workspaceblobstore/paths/features/",
            "mode": "ReadWriteMount",
            "jobOutputType": "uri_folder",
        }
    }
    trial = rest["trial"]
    assert trial["command"] == (
        "python -m himl_kernel run --model TwoInputsCV --crossval_count 3 --learning_rate 0.01"
        " --crossval_index ${{search_space.crossval_index}}"
    )
    assert trial["distribution"] == {"processCountPerInstance": 1, "distributionType": "Mpi"}
    assert trial["resources"] == {"instanceCount": 2, "properties": {}, "shmSize": "100g"}
    assert trial["environmentVariables"] == {
        "HIML_TEST": "1",
        "HIML_TARGET_FOLDERS": '{"INPUT_1": "/tmp/labels"}',
        "HIML_WIRE_FORMAT": "1",
        "HIML_BACKEND": "azureml",
    }
    env_name = control_plane.registered_environments[0]["name"]
    assert trial["environmentId"] == f"azureml:{env_name}:1"
    assert env_name.startswith("himl-")
    assert control_plane.registered_environments[0]["conda_file"] == yaml.safe_load(CONDA)
    staged = Path(trial["codeId"])
    assert staged_files(staged) == [
        ".amlignore", "config.json", "environment.yml", "src/model.py", "train.py",
    ]  # fmt: skip
    tags = rest["tags"]
    assert tags["team"] == "pathology" and tags["himl.model"] == "TwoInputsCV"
    assert tags["himl.command"] == "TwoInputsCV --crossval_count 3 --learning_rate 0.01"
    err = capsys.readouterr().err
    assert "himl: azureml run himl_test_job_1: https://ml.azure.com/runs/himl_test_job_1?wsid=/subscriptions/" in err
    assert "code snapshot: 5 files" in err


def script_job(root: Path, **changes: object) -> JobSpec:
    spec = JobSpec(
        entry=Entry("script", "train.py", ["--lr", "0.1"]),
        snapshot=Snapshot(root),
        environment=Environment(conda_file=root / "environment.yml", shm_size="16g"),
        compute=Compute("azureml", "gpu-nc24", num_nodes=2, processes_per_node=4),
        env_vars={"OMP_NUM_THREADS": "2"},
        tags={"purpose": "test"},
        experiment="plain",
        display_name="plain-run",
        max_run_duration_s=3600,
        wait_for_completion=False,
    )
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def test_dry_run_yaml_loads_back_and_equals_the_submitted_job(
    project: Path, control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> None:
    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    backend = AzureMLBackend()
    text = backend.render(script_job(project), host)
    assert control_plane.submitted == []  # a dry run sends nothing
    dry = tmp_path_factory.mktemp("dry") / "job.yml"
    dry.write_text(text)
    loaded = load_job(dry)
    loaded_job = loaded._to_job() if hasattr(loaded, "_to_job") else loaded

    submission = backend.submit(script_job(project), host)
    recorded = control_plane.submitted[0]
    assert plain(loaded_job._to_dict()) == recorded.as_dict
    assert submission.run_id == "himl_test_job_1" and submission.status == "Queued"

    rest = recorded.rest["properties"]
    assert rest["jobType"] == "Command"
    assert rest["command"] == "python train.py --lr 0.1"
    assert rest["distribution"] == {"processCountPerInstance": 4, "distributionType": "PyTorch"}
    assert rest["resources"] == {"instanceCount": 2, "properties": {}, "shmSize": "16g"}
    # two nodes of one process each, as hi-ml submits a script without a processes-per-node setting: MPI
    backend.submit(script_job(project, compute=Compute("azureml", "gpu-nc24", num_nodes=2)), host)
    one_each = control_plane.submitted[-1].rest["properties"]
    assert one_each["distribution"] == {"processCountPerInstance": 1, "distributionType": "Mpi"}
    assert rest["limits"] == {"timeout": "PT1H", "jobLimitsType": "Command"}
    assert rest["experimentName"] == "plain" and rest["displayName"] == "plain-run"
    assert rest["tags"]["himl.command"] == "train.py --lr 0.1" and rest["tags"]["purpose"] == "test"


def test_dry_run_from_the_command_line_needs_no_workspace_or_credential(
    himl_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("train.py").write_text("print(1)\n")
    Path("environment.yml").write_text(CONDA)
    code = main(["submit", "train.py", "--compute", "azureml", "--cluster", "gpu-nc24", "--dry-run", "--", "--n", "3"])
    out = capsys.readouterr().out
    assert code == 0
    job = yaml.safe_load(out)
    assert (
        job["type"] == "command" and job["command"] == "python train.py --n 3" and job["compute"] == "azureml:gpu-nc24"
    )


def test_environment_is_registered_once_under_a_name_derived_from_its_content(
    project: Path, control_plane: ControlPlane
) -> None:
    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    backend = AzureMLBackend()
    backend.submit(script_job(project), host)
    backend.submit(script_job(project), host)
    assert len(control_plane.registered_environments) == 1
    first = control_plane.submitted[0].rest["properties"]["environmentId"]
    assert control_plane.submitted[1].rest["properties"]["environmentId"] == first

    (project / "requirements.txt").write_text("numpy==1.26.4  # pinned\n\ntorch\n")
    backend.submit(script_job(project, environment=Environment(pip_requirements=project / "requirements.txt")), host)
    # a docker image with the project's environment.yml: hi-ml installs the user's packages in that image
    backend.submit(script_job(project, environment=Environment(docker_image="myregistry.io/train:3")), host)
    bare = script_job(project, environment=Environment(docker_image="myregistry.io/train:3"))
    (project / "environment.yml").unlink()
    backend.submit(bare, host)
    first_env, pip_env, docker_conda_env, docker_env = control_plane.registered_environments
    assert first_env["image"] == "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.3-cudnn8-ubuntu20.04:20230509.v1"
    assert pip_env["conda_file"]["dependencies"][-1] == {"pip": ["numpy==1.26.4", "torch"]}
    assert docker_conda_env["image"] == "myregistry.io/train:3"
    assert docker_conda_env["conda_file"] == yaml.safe_load(CONDA)
    assert docker_env["image"] == "myregistry.io/train:3" and "conda_file" not in docker_env
    names = {e["name"] for e in control_plane.registered_environments}
    assert len(names) == 4
    # no --shm-size: hi-ml's 100g, not the service's small default that data loaders run out of
    assert control_plane.submitted[0].rest["properties"]["resources"]["shmSize"] == "16g"
    assert control_plane.submitted[-1].rest["properties"]["resources"]["shmSize"] == "100g"


def test_input_datasets_become_data_assets_when_missing(project: Path, control_plane: ControlPlane) -> None:
    from himl_kernel.datasets import DatasetConfig

    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    spec = script_job(project, input_datasets=[DatasetConfig(name="newdata", datastore="mystore")])
    AzureMLBackend().submit(spec, host)
    assert control_plane.created_data == [
        {
            "name": "newdata",
            "version": "1",
            "type": "uri_folder",
            "path": "azureml://datastores/mystore/paths/newdata/",
            "tags": {},
            "properties": {},
        }
    ]


def test_waiting_streams_the_logs_and_reports_the_final_status(project: Path, control_plane: ControlPlane) -> None:
    """The stand-in's job is Queued until its logs are streamed, then ends with ``control_plane.outcome``."""
    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    backend = AzureMLBackend()
    queued = backend.submit(script_job(project), host)
    assert (queued.status, queued.exit_code) == ("Queued", 0) and control_plane.streamed == []

    finished = backend.submit(script_job(project, wait_for_completion=True), host)
    assert control_plane.streamed == [finished.run_id]
    assert (finished.status, finished.exit_code) == ("FINISHED", 0)

    control_plane.outcome = "Canceled"
    killed = backend.submit(script_job(project, wait_for_completion=True), host)
    assert (killed.status, killed.exit_code) == ("KILLED", 1)


def test_a_job_that_fails_while_waiting_reports_failed(project: Path, control_plane: ControlPlane) -> None:
    control_plane.outcome = "Failed"
    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    failed = AzureMLBackend().submit(script_job(project, wait_for_completion=True), host)
    assert (failed.status, failed.exit_code) == ("FAILED", 1)


def test_snapshot_over_the_limit_is_a_one_line_error_before_any_upload(project: Path, tmp_path: Path) -> None:
    (project / "weights.bin").write_bytes(b"1" * 5000)
    with pytest.raises(HimlError) as error:
        stage_snapshot(Snapshot(project), tmp_path / "stage", limit=4000)
    message = str(error.value)
    assert "over AzureML's limit" in message and "weights.bin (0.0 MB)" in message and ".amlignore" in message
    assert not (tmp_path / "stage").exists()


def test_unknown_cluster_and_unknown_dataset_version_are_one_line_errors(
    project: Path, control_plane: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    add_assets(control_plane)
    base = ["submit", "train.py", "--compute", "azureml", "--no-wait"]
    assert main([*base, "--cluster", "gpu-nc42"]) == 2
    assert main([*base, "--cluster", "gpu-nc24", "--input-dataset", "mnist"]) == 0
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("himl: error:")]
    assert errors == [
        "himl: error: unknown compute cluster 'gpu-nc42' in workspace 'himl-ws'; known: cpu-small, gpu-nc24"
    ]
    from himl_kernel.datasets import DatasetConfig

    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    # a pinned version that does not exist yet is created at the dataset's datastore path, as hi-ml does
    spec = script_job(project, input_datasets=[DatasetConfig(name="labels", version=7)])
    AzureMLBackend().submit(spec, host)
    assert control_plane.created_data == [
        {
            "name": "labels",
            "tags": {},
            "version": "7",
            "path": "azureml://datastores/workspaceblobstore/paths/labels/",
            "properties": {},
            "type": "uri_folder",
        }
    ]
    said = capsys.readouterr().err
    assert (
        "himl: created input data asset labels:7 at azureml://datastores/workspaceblobstore/paths/labels/ "
        "(version 7 did not exist)\n" in said
    )
    rest = control_plane.submitted[-1].rest["properties"]
    assert rest["inputs"]["INPUT_0"]["uri"] == "azureml:labels:7"


def test_random_sweep_with_ranges_and_seeds_ranks_trials_by_the_given_metric(
    project: Path, control_plane: ControlPlane
) -> None:
    from himl_kernel.sweep import Sweep, Uniform

    sweep = Sweep(
        parameters={"lr": Uniform(1e-4, 1e-1, log=True), "dropout": Uniform(0.0, 0.5), "seed": [1, 2]},
        sampling="random",
        max_trials=6,
        max_parallel=2,
        primary_metric="val/auroc",
        goal="maximize",
    )
    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    AzureMLBackend().submit(script_job(project, sweep=sweep), host)
    rest = control_plane.submitted[0].rest["properties"]
    assert rest["objective"] == {"goal": "maximize", "primaryMetric": "val/auroc"}
    assert rest["samplingAlgorithm"]["samplingAlgorithmType"] == "Random"
    assert rest["limits"]["maxTotalTrials"] == 6 and rest["limits"]["maxConcurrentTrials"] == 2
    space = rest["searchSpace"]
    assert space["seed"] == ["choice", [[1, 2]]]
    assert space["dropout"] == ["uniform", [0.0, 0.5]]
    assert space["lr"][0] == "loguniform" and space["lr"][1] == pytest.approx([-9.2103, -2.3026], abs=1e-3)
    assert rest["trial"]["command"] == (
        "python train.py --lr 0.1 --lr ${{search_space.lr}} --dropout ${{search_space.dropout}}"
        " --seed ${{search_space.seed}}"
    )
