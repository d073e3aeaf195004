"""Inside a simulated SDK v1 job: RUN_CONTEXT, RunInfo and the kernel's metric sinks reach the run's services.

The job's environment is what AzureML sets in a v1 run, with the service
endpoint at the v1 stand-in; azureml-core's ``Run.get_context()`` is real, and
the tests read the metric batches the stand-in recorded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import himl_azure_v1
import pytest

from himl_kernel import current
from himl_kernel.plugins import build_host
from tests.azure_v1.control_plane_v1 import FAKE_TOKEN, RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, V1ControlPlane

RUN_ID = "HelloWorld_1700000000_abcd1234"


@pytest.fixture
def v1_job(v1_plane: V1ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[V1ControlPlane]:
    v1_plane.experiments["HelloWorld"] = {"experimentId": "exp-1", "name": "HelloWorld", "tags": {}}
    v1_plane.run_json("HelloWorld", RUN_ID, status="Running", experimentId="exp-1")
    job = {
        "HIML_BACKEND": "azureml-v1",
        "AZUREML_RUN_ID": RUN_ID,
        "AZUREML_ARM_SUBSCRIPTION": SUBSCRIPTION,
        "AZUREML_ARM_RESOURCEGROUP": RESOURCE_GROUP,
        "AZUREML_ARM_WORKSPACE_NAME": WORKSPACE,
        "AZUREML_ARM_PROJECT_NAME": "HelloWorld",
        "AZUREML_EXPERIMENT_ID": "exp-1",
        "AZUREML_RUN_TOKEN": FAKE_TOKEN,
        "AZUREML_SERVICE_ENDPOINT": v1_plane.url,
        "AZUREML_DISCOVERY_SERVICE_ENDPOINT": f"{v1_plane.url}/discovery",
        "HIML_HOME": str(tmp_path / "himl-home"),
    }
    for name, value in job.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(himl_azure_v1.__dict__, "RUN_CONTEXT", raising=False)  # made on first use, per job
    from azureml.core.run import _SubmittedRun

    # azureml-core keeps one Run per run id for the process; each test is a fresh job with its own server
    monkeypatch.setattr(_SubmittedRun, "_SubmittedRun__instances", {})
    yield v1_plane
    himl_azure_v1.__dict__.pop("RUN_CONTEXT", None)


def _metrics(plane: V1ControlPlane) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for metric in plane.metrics:
        assert metric["run"] == RUN_ID
        found.setdefault(metric["name"], []).extend(row["data"] for row in metric["value"])
    return found


def test_run_context_is_the_jobs_v1_run_and_its_logs_reach_the_service(v1_job: V1ControlPlane) -> None:
    from azureml.core import Run

    run = himl_azure_v1.RUN_CONTEXT
    assert isinstance(run, Run) and run.id == RUN_ID and run.experiment.name == "HelloWorld"
    run.log("val/loss", 0.5)
    run.log_list("accuracies", [0.25, 0.75])
    run.log_table("confusion", {"label": [0, 1], "count": [3, 4]})
    run.flush()
    metrics = _metrics(v1_job)
    assert metrics["val/loss"] == [{"val/loss": 0.5}]
    assert metrics["accuracies"] == [{"accuracies": 0.25}, {"accuracies": 0.75}]
    assert metrics["confusion"] == [{"label": 0, "count": 3}, {"label": 1, "count": 4}]
    assert v1_job.unanswered == []


def test_the_kernels_metrics_go_to_the_v1_run_inside_a_v1_job(v1_job: V1ControlPlane) -> None:
    host = build_host()
    info = host.detect_run(dict(os.environ))
    assert info is not None and info.backend == "azureml-v1" and info.run_id == RUN_ID
    assert info.output_folder == Path.cwd() / "outputs"
    active = current.activate(info, host, logger_names=["azureml-v1"])
    try:
        current.log_metrics({"train/loss": 1.5})
        current.log_metrics({"val/loss": 0.25}, step=3)
    finally:
        current.deactivate(active)
    metrics = _metrics(v1_job)
    assert metrics["train/loss"] == [{"train/loss": 1.5}]
    assert metrics["val/loss"] == [{"step": 3, "value": 0.25}]
