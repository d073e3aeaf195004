"""The rest of hi-ml's ``submit_to_azure_if_needed`` arguments, each asserted on the job the control plane receives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from azure.ai.ml import MLClient
from azure.ai.ml.entities import Environment as AzureEnvironment
from azure.ai.ml.sweep import Choice
from azure.storage.blob import BlobServiceClient
from himl_azure_v2 import submit_to_azure_if_needed

from himl_kernel.errors import HimlError
from tests.azure_v2.control_plane import BLOB_CONTAINER, ControlPlane

CONDA = "name: t\ndependencies:\n  - python=3.10\n  - pip\n  - pip:\n    - numpy\n"


@pytest.fixture
def script(workspace_dir: Path) -> Path:
    (workspace_dir / "environment.yml").write_text(CONDA)
    path = workspace_dir / "train.py"
    path.write_text("print('hi')\n")
    return path


def submit(script: Path, **kwargs: Any) -> int:
    """``submit_to_azure_if_needed`` with ``--azureml`` as a hi-ml script calls it; the exit status."""
    kwargs.setdefault("compute_cluster_name", "gpu-nc24")
    with pytest.raises(SystemExit) as done:
        submit_to_azure_if_needed(argv=[str(script), "--azureml"], **kwargs)
    return int(done.value.code or 0)


def test_index_url_wheel_identity_and_pytorch_processes_reach_the_job(
    script: Path, control_plane: ControlPlane, fresh_containers: BlobServiceClient, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = script.parent / "mypkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x03\x04 not really a zip, but a file")
    assert (
        submit(
            script,
            conda_environment_file="environment.yml",
            pip_extra_index_url="https://test.pypi.org/simple/",
            private_pip_wheel_path=wheel,
            identity_based_auth=True,
            num_nodes=2,
            pytorch_processes_per_node_v2=4,
        )
        == 0
    )
    (registered,) = control_plane.registered_environments
    (wheel_blob,) = [b.name for b in fresh_containers.get_container_client(BLOB_CONTAINER).list_blobs()]
    assert wheel_blob.startswith("azureml-private-packages/") and wheel_blob.endswith("/mypkg-1.0-py3-none-any.whl")
    blob = fresh_containers.get_container_client(BLOB_CONTAINER).get_blob_client(wheel_blob)
    assert blob.download_blob().readall() == wheel.read_bytes()
    assert registered["conda_file"]["dependencies"] == [
        "python=3.10",
        "pip",
        {"pip": ["--extra-index-url https://test.pypi.org/simple/", "numpy", blob.url]},
    ]
    rest = control_plane.submitted[0].rest["properties"]
    assert rest["environmentId"] == f"azureml:{registered['name']}:1"
    assert rest["identity"] == {"identityType": "UserIdentity"}
    assert rest["environmentVariables"]["HIML_IDENTITY_BASED_AUTH"] == "1"
    assert rest["distribution"] == {"distributionType": "PyTorch", "processCountPerInstance": 4}
    assert rest["resources"]["instanceCount"] == 2
    assert (
        "himl: uploaded private wheel mypkg-1.0-py3-none-any.whl to azureml-private-packages/"
        in capsys.readouterr().err
    )


def test_single_node_jobs_are_mpi_unless_asked_not_to(script: Path, control_plane: ControlPlane) -> None:
    assert submit(script, conda_environment_file="environment.yml") == 0
    assert submit(script, conda_environment_file="environment.yml", use_mpi_run_for_single_node_jobs=False) == 0
    first, second = (job.rest["properties"] for job in control_plane.submitted)
    assert first["distribution"] == {"distributionType": "Mpi", "processCountPerInstance": 1}
    assert second.get("distribution") is None
    assert "identity" not in first or first["identity"] is None


def test_aml_environment_name_uses_the_registered_environment(script: Path, control_plane: ControlPlane) -> None:
    for version in ("1", "2"):
        control_plane.environments[f"team-env:{version}"] = AzureEnvironment(
            name="team-env", version=version, image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
        )
    assert submit(script, aml_environment_name="team-env") == 0
    assert submit(script, aml_environment_name="team-env:1") == 0
    latest, pinned = (job.rest["properties"]["environmentId"] for job in control_plane.submitted)
    assert (latest, pinned) == ("azureml:team-env@latest", "azureml:team-env:1")
    assert control_plane.registered_environments == []  # nothing made from the conda file in the folder


def test_hyperparam_args_make_a_sweep_and_ml_client_is_used_as_given(script: Path, control_plane: ControlPlane) -> None:
    from himl_azure_v2.workspace import Workspace

    client = Workspace.from_config().client
    seen: list[tuple[Any, Any]] = []
    hyperparam_args = {
        "parameter_sampling": {"learning_rate": Choice([0.01, 0.1])},
        "sampling_algorithm": "grid",
        "primary_metric": "val/accuracy",
        "goal": "Maximize",
        "max_total_trials": 2,
    }
    status = submit(
        script,
        ml_client=client,
        conda_environment_file="environment.yml",
        hyperparam_args=hyperparam_args,
        after_submission=lambda job, ml_client: seen.append((job, ml_client)),
    )
    assert status == 0
    rest = control_plane.submitted[0].rest["properties"]
    assert rest["jobType"] == "Sweep"
    assert rest["objective"] == {"goal": "maximize", "primaryMetric": "val/accuracy"}
    assert rest["searchSpace"] == {"learning_rate": ["choice", [[0.01, 0.1]]]}
    assert rest["limits"]["maxTotalTrials"] == 2
    assert "maxConcurrentTrials" not in rest["limits"]  # the service decides how many run at once
    assert rest["trial"]["command"] == "python train.py --learning_rate ${{search_space.learning_rate}}"
    ((job, ml_client),) = seen
    assert ml_client is client and job.name == "himl_test_job_1"  # hi-ml v2's (Job, MLClient)


def test_bad_arguments_are_one_line_before_anything_is_sent(script: Path, control_plane: ControlPlane) -> None:
    not_a_wheel = script.parent / "pkg.zip"
    not_a_wheel.write_bytes(b"x")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"private_pip_wheel_path": not_a_wheel}, "private_pip_wheel_path '"),
        ({"pip_extra_index_url": "file:///etc"}, "pip_extra_index_url 'file:///etc' must be an http(s):// URL"),
        ({"aml_environment_name": "bad name; rm"}, "aml_environment_name 'bad name; rm' is not an AzureML"),
        ({"aml_environment_name": "nowhere"}, "environment 'nowhere@latest' is not registered in workspace 'himl-ws'"),
        ({"pytorch_processes_per_node_v2": 0}, "pytorch_processes_per_node_v2 must be at least 1, got 0"),
        ({"hyperdrive_config": object()}, "hyperdrive_config is an SDK v1 HyperDriveConfig"),
        ({"hyperparam_args": {"parameter_sampling": {}}}, "'parameter_sampling' must be a non-empty dict"),
        (
            {
                "pip_extra_index_url": "https://x.org/simple",
                "docker_base_image": "img:1",
                "snapshot_root_directory": ".",
            },
            "pip_extra_index_url and private_pip_wheel_path need a conda environment file",
        ),
    ]
    (script.parent / "environment.yml").unlink()  # the image-only case must not pick the folder's conda file
    for kwargs, message in cases:
        with pytest.raises(HimlError) as caught:
            submit(script, **{"conda_environment_file": None, **kwargs})
        assert message in str(caught.value) and "\n" not in str(caught.value), kwargs
    assert control_plane.submitted == [] and control_plane.registered_environments == []


def test_ml_client_for_no_workspace_is_refused(script: Path) -> None:
    from azure.identity import DefaultAzureCredential

    client = MLClient(DefaultAzureCredential(), subscription_id="s", resource_group_name="g")
    with pytest.raises(HimlError, match=r"^ml_client must be an MLClient for one workspace"):
        submit(script, ml_client=client, conda_environment_file="environment.yml")


def test_environment_yml_beside_a_script_in_a_subfolder_is_used(
    workspace_dir: Path, control_plane: ControlPlane
) -> None:
    (workspace_dir / "environment.yml").write_text("name: root\ndependencies:\n  - python=3.10\n")
    sub = workspace_dir / "scripts"
    sub.mkdir()
    (sub / "environment.yml").write_text("name: beside\ndependencies:\n  - python=3.11\n")
    (sub / "job.py").write_text("print(1)\n")
    assert submit(sub / "job.py") == 0
    (registered,) = control_plane.registered_environments
    assert registered["conda_file"]["name"] == "beside"  # the nearest one, as hi-ml finds it
    assert control_plane.submitted[0].rest["properties"]["command"] == "python scripts/job.py"
