"""hi-ml's datastore layout, sweep metrics table, workspace and run helpers, with hi-ml's signatures."""

from __future__ import annotations

from pathlib import Path

import himl_azure_v2
import pytest
from azure.storage.blob import BlobServiceClient
from mlflow.tracking import MlflowClient

from himl_kernel.errors import HimlError
from tests.azure_v2.control_plane import BLOB_CONTAINER, ControlPlane


def _tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_upload_and_download_keep_hi_mls_layout(
    workspace_dir: Path, fresh_containers: BlobServiceClient, tmp_path: Path
) -> None:
    local = tmp_path / "foo" / "bar"
    (local / "deep").mkdir(parents=True)
    (local / "1.txt").write_text("one")
    (local / "2.txt").write_text("two")
    (local / "deep" / "3.txt").write_text("three")
    # the manual: files of foo/bar uploaded to remote_path "baz" are baz/1.txt, baz/2.txt (the folder name is dropped)
    himl_azure_v2.upload_to_datastore("workspaceblobstore", local, Path("baz"))
    names = sorted(b.name for b in fresh_containers.get_container_client(BLOB_CONTAINER).list_blobs())
    assert names == ["baz/1.txt", "baz/2.txt", "baz/deep/3.txt"]
    # the manual: prefix "foo/bar" into "outputs" gives outputs/foo/bar/1.txt (the prefix is kept below the folder)
    himl_azure_v2.upload_to_datastore("workspaceblobstore", local, "foo/bar")
    himl_azure_v2.download_from_datastore("workspaceblobstore", "foo/bar", tmp_path / "outputs")
    assert _tree(tmp_path / "outputs") == ["foo/bar/1.txt", "foo/bar/2.txt", "foo/bar/deep/3.txt"]
    # a prefix naming one file downloads that file, at its path
    himl_azure_v2.download_from_datastore("workspaceblobstore", "baz/deep/3.txt", tmp_path / "single")
    assert _tree(tmp_path / "single") == ["baz/deep/3.txt"]
    assert (tmp_path / "single" / "baz" / "deep" / "3.txt").read_text() == "three"
    # a sibling whose name only starts like the prefix is not part of it (hi-ml's string match took it)
    himl_azure_v2.upload_to_datastore("workspaceblobstore", local / "deep", "baz_other")
    himl_azure_v2.download_from_datastore("workspaceblobstore", "baz", tmp_path / "only_baz")
    assert _tree(tmp_path / "only_baz") == ["baz/1.txt", "baz/2.txt", "baz/deep/3.txt"]
    with pytest.raises(HimlError, match=r"^download: nothing found at azureml-blobstore-test/nothing/$"):
        himl_azure_v2.download_from_datastore("workspaceblobstore", "nothing", tmp_path / "none")
    with pytest.raises(HimlError, match=r"^upload_to_datastore: local_data_folder '.*missing' must be an existing"):
        himl_azure_v2.upload_to_datastore("workspaceblobstore", tmp_path / "missing", "x")


def _v2_sweep(uri: str) -> str:
    """A finished v2 sweep as the service records it in the workspace's MLflow store: a parent, three trials."""
    client = MlflowClient(uri)
    experiment = client.create_experiment("sweep-exp")
    parent = client.create_run(experiment, run_name="sweep").info.run_id
    for index, accuracy in ((2, [0.72, 0.83]), (0, [0.7, 0.8]), (1, [0.71, 0.82])):
        child = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
        client.log_param(child, "crossval_index", str(index))
        for step, value in enumerate(accuracy):
            client.log_metric(child, "accuracy", value, step=step)
        client.log_metric(child, "test_auc", 0.9 + index / 100)
    return parent


def test_aggregate_hyperdrive_metrics_tabulates_the_sweeps_trials(
    workspace_dir: Path, control_plane: ControlPlane
) -> None:
    parent = _v2_sweep(control_plane.mlflow_tracking_uri)
    table = himl_azure_v2.aggregate_hyperdrive_metrics("crossval_index", run_id=parent)
    assert list(table.columns) == [0, 1, 2] and list(table.index) == ["accuracy", "test_auc"]
    assert table[0]["accuracy"] == [0.7, 0.8] and table[2]["accuracy"] == [0.72, 0.83]
    assert table[1]["test_auc"] == pytest.approx(0.91)
    kept = himl_azure_v2.aggregate_hyperdrive_metrics("crossval_index", run_id=parent, keep_metrics=["test_auc"])
    assert list(kept.index) == ["test_auc"]
    with pytest.raises(HimlError, match=r"child run \w+ has no parameter 'fold'; it has \['crossval_index'\]$"):
        himl_azure_v2.aggregate_hyperdrive_metrics("fold", run_id=parent)
    with pytest.raises(HimlError, match=r"run_id \"x' or '1\" is not a run id$"):
        himl_azure_v2.aggregate_hyperdrive_metrics("crossval_index", run_id="x' or '1")
    with pytest.raises(HimlError, match=r"give exactly one of run_id and run$"):
        himl_azure_v2.aggregate_hyperdrive_metrics("crossval_index")


def test_get_workspace_create_aml_run_object_and_run_context(
    workspace_dir: Path, control_plane: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = himl_azure_v2.get_workspace()
    assert workspace.config.workspace_name == "himl-ws" and himl_azure_v2.get_workspace(workspace) is workspace
    run = himl_azure_v2.create_aml_run_object(experiment_name="run_on_my_vm", run_name="try1")
    run.log("foo", 1.23)
    recorded = MlflowClient(control_plane.mlflow_tracking_uri).get_run(run.id)
    assert recorded.data.metrics == {"foo": 1.23} and recorded.info.run_name == "try1"
    assert run.get_portal_url() == workspace.studio_url(run.id)
    with pytest.raises(HimlError, match="snapshot_directory is an SDK v1 feature"):
        himl_azure_v2.create_aml_run_object("e", snapshot_directory=tmp_path)
    offline = himl_azure_v2.RUN_CONTEXT  # no run here: hi-ml's offline run, which prints
    offline.log(name="name_of_the_metric", value=0.5)
    assert offline.id.startswith("OfflineRun_")
    assert "himl: offline run: name_of_the_metric = 0.5" in capsys.readouterr().out
