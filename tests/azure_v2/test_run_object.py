"""``run_info.run`` is hi-ml's Run object on the run's MLflow run: here (the local store) and inside AzureML."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from himl_azure_v2 import submit_to_azure_if_needed
from himl_azure_v2.run import MlflowRun
from mlflow.tracking import MlflowClient

from himl_kernel.errors import HimlError


def _artifacts(client: MlflowClient, run_id: str, folder: str = "") -> list[str]:
    found: list[str] = []
    for entry in client.list_artifacts(run_id, folder or None):
        found += _artifacts(client, run_id, entry.path) if entry.is_dir else [entry.path]
    return sorted(found)


def _exercise(run: MlflowRun, tmp_path: Path) -> None:
    run.log("Kernel type", 3)
    run.log("Accuracy", 0.875)
    run.log_list("losses", [0.9, 0.5, 0.25])
    run.log_row("table", x=1, y=2.5)
    run.log_row("table", x=2, y=3.5)
    report = tmp_path / "report_source.txt"
    report.write_text("hello")
    run.upload_file("outputs/report.txt", report)
    run.upload_file("outputs/stream.bin", io.BytesIO(b"\x00\x01"))
    folder = tmp_path / "ckpts"
    (folder / "sub").mkdir(parents=True)
    (folder / "last.ckpt").write_text("w")
    (folder / "sub" / "epoch1.ckpt").write_text("w1")
    run.upload_folder("outputs/checkpoints", folder)
    run.tag("origin", "hi-ml")


def _check_recorded(client: MlflowClient, run_id: str, run: MlflowRun) -> None:
    data = client.get_run(run_id).data
    assert data.metrics["Kernel type"] == 3.0 and data.metrics["Accuracy"] == 0.875
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "losses")] == [(0, 0.9), (1, 0.5), (2, 0.25)]
    assert [m.step for m in client.get_metric_history(run_id, "table/x")] == [0, 1]
    assert data.tags["origin"] == "hi-ml"
    assert _artifacts(client, run_id) == [
        "outputs/checkpoints/last.ckpt",
        "outputs/checkpoints/sub/epoch1.ckpt",
        "outputs/report.txt",
        "outputs/stream.bin",
    ]
    assert run.get_metrics()["losses"] == [0.9, 0.5, 0.25] and run.get_metrics("Accuracy") == {"Accuracy": 0.875}
    assert run.get_file_names() == _artifacts(client, run_id)


def test_locally_run_is_the_local_stores_mlflow_run(himl_home: Path, tmp_path: Path) -> None:
    info = submit_to_azure_if_needed(input_datasets=[], argv=["script.py"], submit_to_azureml=False)
    run = info.run
    assert isinstance(run, MlflowRun) and run.id == info.run_info.run_id  # type: ignore[union-attr]
    assert info.is_running_in_azure_ml is False
    _exercise(run, tmp_path)
    from himl_kernel.runstore import RunStore

    store = RunStore()
    _check_recorded(store.client, run.id, run)
    assert run.get_portal_url() == f"{store.display_uri}#run={run.id}"


def test_inside_azureml_run_is_the_jobs_mlflow_run(
    himl_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'workspace.db'}"
    client = MlflowClient(uri)
    job_run = client.create_run(client.create_experiment("hello")).info.run_id
    monkeypatch.setenv("AZUREML_RUN_ID", "sleepy_job_42")
    monkeypatch.setenv("MLFLOW_RUN_ID", job_run)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("HIML_LOGGERS", "")
    for key, value in (("SUBSCRIPTION", "sub-1"), ("RESOURCEGROUP", "rg-1"), ("WORKSPACE_NAME", "ws-1")):
        monkeypatch.setenv(f"AZUREML_ARM_{key}", value)
    info = submit_to_azure_if_needed(compute_cluster_name="gpu-nc24", argv=["script.py", "--azureml"])
    run = info.run
    assert isinstance(run, MlflowRun) and run.id == job_run and info.is_running_in_azure_ml
    _exercise(run, tmp_path)
    _check_recorded(client, job_run, run)
    assert run.get_portal_url() == (
        f"https://ml.azure.com/runs/{job_run}?wsid=/subscriptions/sub-1/resourcegroups/rg-1/workspaces/ws-1"
    )


BAD_CALLS = [
    (lambda run: run.log("acc", "high"), "metric 'acc': 'high' is not a number"),
    (lambda run: run.log("acc[0]", 1), "metric name 'acc[0]' is not one MLflow accepts"),
    (lambda run: run.log_list("l", "abc"), "metric 'l': log_list needs a list of numbers, got str"),
    (lambda run: run.upload_file("../escape.txt", io.BytesIO(b"x")), "artifact name '../escape.txt' must be"),
    (lambda run: run.upload_file("/abs.txt", io.BytesIO(b"x")), "artifact name '/abs.txt' must be"),
    (lambda run: run.upload_file("outputs/x", "no-such-file"), "upload_file 'outputs/x': 'no-such-file' is not"),
    (lambda run: run.upload_folder("outputs", "no-such-dir"), "upload_folder 'outputs': 'no-such-dir' is not"),
    (lambda run: run.log_table("t", {"a": [1, 2], "b": [1]}), "log_table 't': the columns have different"),
]


def test_bad_calls_are_one_line_and_send_nothing(himl_home: Path) -> None:
    info = submit_to_azure_if_needed(argv=["script.py"], submit_to_azureml=False)
    run = info.run
    assert run is not None
    for call, message in BAD_CALLS:
        with pytest.raises(HimlError) as caught:
            call(run)
        assert message in str(caught.value) and "\n" not in str(caught.value)
    from himl_kernel.runstore import RunStore

    recorded = RunStore().client.get_run(run.id)
    assert recorded.data.metrics == {} and _artifacts(RunStore().client, run.id) == []
