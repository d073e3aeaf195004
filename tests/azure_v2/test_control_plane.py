"""The control-plane stand-in refuses what the AzureML service would refuse, so the job tests can fail.

Each case starts from a job the stand-in accepts and changes one thing about
it; the request must then be refused with the service's kind of error (HTTP 400)
naming what is wrong, and nothing is recorded as submitted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.ai.ml import Input, MLClient, command
from azure.ai.ml.entities import Data, Environment
from azure.ai.ml.exceptions import JobException
from azure.ai.ml.sweep import Choice
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import AzureCliCredential

from tests.azure_v2.control_plane import ControlPlane

ENVIRONMENT = "azureml:himl-test-env:1"


@pytest.fixture
def client(control_plane: ControlPlane, tmp_path: Path) -> MLClient:
    """An MLClient on the stand-in, with one registered environment and one data asset."""
    control_plane.environments["himl-test-env:1"] = Environment(name="himl-test-env", version="1", image="python:3.10")
    control_plane.data.append(
        Data(name="mnist", version="3", type="uri_folder", path="azureml://datastores/workspaceblobstore/paths/mnist/")
    )
    (tmp_path / "train.py").write_text("print('training')\n")
    return MLClient(
        AzureCliCredential(),
        subscription_id=control_plane.subscription,
        resource_group_name=control_plane.resource_group,
        workspace_name=control_plane.workspace,
    )


def command_job(code: Path, **changes: Any) -> Any:
    """A command job the stand-in accepts; ``changes`` override the builder's arguments."""
    arguments: dict[str, Any] = {
        "command": "python train.py --data ${{inputs.data}}",
        "inputs": {"data": Input(type="uri_folder", path="azureml:mnist:3")},
        "environment": ENVIRONMENT,
        "compute": "gpu-nc24",
        "code": str(code),
    }
    arguments.update(changes)
    return command(**arguments)


def sweep_job(code: Path, trial_command: str = "python train.py --lr ${{inputs.lr}}", **changes: Any) -> Any:
    """A grid sweep over ``lr`` that the stand-in accepts; ``changes`` override the sweep's arguments."""
    trial = command(
        command=trial_command, inputs={"lr": 0.1}, environment=ENVIRONMENT, compute="gpu-nc24", code=str(code)
    )
    arguments: dict[str, Any] = {"sampling_algorithm": "grid", "primary_metric": "val/loss", "goal": "minimize"}
    arguments.update(changes)
    return trial(lr=Choice([0.1, 0.2])).sweep(**arguments)


def test_a_well_formed_command_and_sweep_are_accepted(
    client: MLClient, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """The baseline of every refusal below: unchanged, both jobs go through and are recorded."""
    created = client.jobs.create_or_update(command_job(tmp_path))
    swept = client.jobs.create_or_update(sweep_job(tmp_path))
    assert [r.name for r in control_plane.submitted] == [created.name, swept.name]
    assert [r.rest["properties"]["jobType"] for r in control_plane.submitted] == ["Command", "Sweep"]
    assert created.status == swept.status == "Queued"


BadJob = Callable[[Path], Any]
REFUSED: list[tuple[str, BadJob, str]] = [
    (
        "no-compute",
        lambda code: command_job(code, compute=None),
        "the job names no compute, and workspace 'himl-ws' has no serverless compute",
    ),
    (
        "unknown-compute",
        lambda code: command_job(code, compute="gpu-nc42"),
        "compute 'gpu-nc42' does not exist in workspace 'himl-ws'",
    ),
    (
        "unregistered-environment",
        lambda code: command_job(code, environment="azureml:never-registered:7"),
        "environment 'azureml:never-registered:7' is not registered in workspace 'himl-ws'",
    ),
    (
        "environment-not-a-reference",
        lambda code: command_job(code, environment="python:3.10"),
        "environment 'python:3.10' is not an azureml:NAME:VERSION reference",
    ),
    (
        "missing-data-asset",
        lambda code: command_job(code, inputs={"data": Input(type="uri_folder", path="azureml:mnist:9")}),
        "input data: data asset 'mnist:9' does not exist",
    ),
    (
        "undefined-search-space-parameter",
        lambda code: sweep_job(code, trial_command="python train.py --lr ${{inputs.lr}} --seed ${{search_space.seed}}"),
        "the command refers to search_space.seed, which the job does not define",
    ),
    (
        "sweep-without-metric",
        lambda code: sweep_job(code, primary_metric=None),
        "a sweep job's objective needs a primaryMetric",
    ),
]


@pytest.mark.parametrize(("bad_job", "reason"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_a_job_the_service_could_not_run_is_refused_with_http_400(
    client: MLClient, control_plane: ControlPlane, tmp_path: Path, bad_job: BadJob, reason: str
) -> None:
    with pytest.raises(HttpResponseError) as refused:
        client.jobs.create_or_update(bad_job(tmp_path))
    assert refused.value.status_code == 400
    assert str(refused.value) == f"(UserError) {reason}"
    assert control_plane.submitted == [] and control_plane.jobs_by_name == {}


def test_something_other_than_a_job_is_a_wrong_api_call(client: MLClient, control_plane: ControlPlane) -> None:
    with pytest.raises(TypeError, match=r"takes an azure\.ai\.ml Job, not dict"):
        client.jobs.create_or_update({"command": "python train.py", "compute": "gpu-nc24"})
    assert control_plane.submitted == []


def test_a_job_stays_queued_until_streamed_and_then_ends_with_the_outcome(
    client: MLClient, control_plane: ControlPlane, tmp_path: Path
) -> None:
    name = str(client.jobs.create_or_update(command_job(tmp_path)).name)
    assert client.jobs.get(name).status == "Queued"
    client.jobs.stream(name)
    assert client.jobs.get(name).status == "Completed" and control_plane.streamed == [name]

    control_plane.outcome = "Failed"
    failing = str(client.jobs.create_or_update(command_job(tmp_path)).name)
    with pytest.raises(JobException, match=f"job {failing} failed"):  # as the SDK's stream does
        client.jobs.stream(failing)
    assert client.jobs.get(failing).status == "Failed"

    with pytest.raises(ResourceNotFoundError, match="job no_such_job not found"):
        client.jobs.stream("no_such_job")
    assert control_plane.streamed == [name, failing]
