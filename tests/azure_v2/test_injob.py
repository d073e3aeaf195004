"""Inside an AzureML job (its environment variables), checkpoints from runs, and logging."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import himl_azure_v2.plugin
import pytest
from azure.storage.blob import BlobServiceClient, ContentSettings
from himl_azure_v2.logger import workspace_sink
from himl_azure_v2.workspace import Workspace

from himl_kernel.checkpoints import resolve_checkpoint
from himl_kernel.errors import HimlError
from himl_kernel.runinfo import RunInfo
from himl_kernel.testing import fresh_host
from tests.azure_v2.control_plane import ARTIFACT_CONTAINER, ControlPlane


def azureml_environ(tracking_uri: str = "azureml://eastus.api.azureml.ms/mlflow/v1.0/x") -> dict[str, str]:
    return {
        "AZUREML_RUN_ID": "sweep_7_2",
        "AZUREML_ROOT_RUN_ID": "sweep_7",
        "MLFLOW_RUN_ID": "sweep_7_2",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "AZURE_ML_INPUT_INPUT_0": "/mnt/azureml/cr/j/abc/cap/data-capability/wd/INPUT_0",
        "AZURE_ML_INPUT_INPUT_1": "/mnt/azureml/cr/j/abc/cap/data-capability/wd/INPUT_1",
        "AZURE_ML_OUTPUT_OUTPUT_0": "/mnt/azureml/cr/j/abc/cap/data-capability/wd/OUTPUT_0",
    }


def test_inside_azureml_the_run_info_comes_from_the_variables_azureml_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    info = host.detect_run(azureml_environ())
    assert info is not None
    assert (info.run_id, info.parent_run_id, info.backend, info.is_remote) == ("sweep_7_2", "sweep_7", "azureml", True)
    assert info.input_datasets == [
        Path("/mnt/azureml/cr/j/abc/cap/data-capability/wd/INPUT_0"),
        Path("/mnt/azureml/cr/j/abc/cap/data-capability/wd/INPUT_1"),
    ]
    assert info.output_datasets == [Path("/mnt/azureml/cr/j/abc/cap/data-capability/wd/OUTPUT_0")]
    assert info.output_folder == tmp_path / "outputs" and info.logs_folder == tmp_path / "logs"
    assert info.tracking_uri.startswith("azureml://")
    assert host.detect_run({}) is None


@pytest.mark.parametrize(
    ("marker", "claimed"), [("azureml", True), ("", True), ("amulet", False), ("azureml-v1", False)]
)
def test_a_job_is_claimed_by_the_backend_its_marker_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marker: str, claimed: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    info = host.detect_run({**azureml_environ(), "HIML_BACKEND": marker})
    assert (info is not None) == claimed


def test_inside_azureml_metrics_go_to_the_jobs_own_mlflow_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    from himl_kernel import log_metrics
    from himl_kernel.submit import submit_if_needed

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'job-store.db'}"  # stands in for the workspace's MLflow store
    client = MlflowClient(uri)
    job_run = client.create_run(client.create_experiment("exp")).info.run_id
    env = {**azureml_environ(uri), "AZUREML_RUN_ID": job_run, "MLFLOW_RUN_ID": job_run}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    info = submit_if_needed(host=fresh_host(himl_azure_v2.plugin, names=["azure_v2"]), argv=["train.py", "--azureml"])
    assert info.run_id == job_run
    log_metrics({"val/loss": 0.25}, step=3)
    history = client.get_metric_history(job_run, "val/loss")
    assert [(m.step, m.value) for m in history] == [(3, 0.25)]


def test_log_from_vm_mirrors_a_local_runs_metrics_into_the_workspace(
    workspace_dir: Path, control_plane: ControlPlane
) -> None:
    from mlflow.tracking import MlflowClient

    run = RunInfo("local-run-1", "local", workspace_dir / "o", workspace_dir / "l")
    sink = workspace_sink(run, Workspace.from_config())
    assert sink is not None
    sink.log_metrics({"loss": 1.5}, step=2)
    sink.log_params({"lr": 0.1})
    sink.close()
    mirrored = MlflowClient(control_plane.mlflow_tracking_uri).get_run(sink.run_id)
    assert mirrored.data.metrics == {"loss": 1.5} and mirrored.data.params == {"lr": "0.1"}
    assert mirrored.data.tags["himl.local_run_id"] == "local-run-1" and mirrored.info.status == "FINISHED"
    inside = RunInfo("job", "azureml", workspace_dir / "o", workspace_dir / "l")
    assert workspace_sink(inside, Workspace.from_config()) is None


def put_checkpoint(service: BlobServiceClient, run_id: str, data: bytes, md5: bytes | None = None) -> None:
    blob = service.get_blob_client(ARTIFACT_CONTAINER, f"ExperimentRun/dcid.{run_id}/outputs/checkpoints/last.ckpt")
    blob.upload_blob(data, overwrite=True, content_settings=ContentSettings(content_md5=hashlib.md5(data).digest()))
    if md5 is not None:  # the stored MD5 no longer matches the bytes: what a corrupted copy looks like
        blob.set_http_headers(ContentSettings(content_md5=bytearray(md5)))


def test_run_id_checkpoint_is_downloaded_once_and_md5_checked(
    workspace_dir: Path, control_plane: ControlPlane, fresh_containers: BlobServiceClient, tmp_path: Path
) -> None:
    control_plane.jobs_by_name["earlier_job_1"] = object()
    put_checkpoint(fresh_containers, "earlier_job_1", b"weights" * 1000)
    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    cache = tmp_path / "ckpt-cache"
    found = resolve_checkpoint("earlier_job_1:checkpoints/last.ckpt", host=host, cache_dir=cache)
    assert found.read_bytes() == b"weights" * 1000
    assert found == cache / "azureml" / "earlier_job_1" / "outputs" / "checkpoints" / "last.ckpt"
    # hi-ml's forms: the job id alone is its last checkpoint; a bare name is in its checkpoints folder
    assert resolve_checkpoint("earlier_job_1", host=host, cache_dir=cache) == found
    assert resolve_checkpoint("earlier_job_1:last.ckpt", host=host, cache_dir=cache) == found
    # once: with the blob gone from the workspace, the second resolution is served from the cache
    fresh_containers.get_blob_client(
        ARTIFACT_CONTAINER, "ExperimentRun/dcid.earlier_job_1/outputs/checkpoints/last.ckpt"
    ).delete_blob()
    assert resolve_checkpoint("earlier_job_1:outputs/checkpoints/last.ckpt", host=host, cache_dir=cache) == found
    assert found.read_bytes() == b"weights" * 1000

    control_plane.jobs_by_name["corrupt_job_2"] = object()
    put_checkpoint(fresh_containers, "corrupt_job_2", b"abc", md5=hashlib.md5(b"other").digest())
    with pytest.raises(HimlError, match="MD5 of downloaded"):
        resolve_checkpoint("corrupt_job_2:checkpoints/last.ckpt", host=host, cache_dir=cache)
    assert not (cache / "azureml" / "corrupt_job_2" / "outputs" / "checkpoints" / "last.ckpt").exists()

    with pytest.raises(HimlError, match=r"^run id 'no_such_job' does not exist in AzureML workspace 'himl-ws'$"):
        resolve_checkpoint("no_such_job:checkpoints/last.ckpt", host=host, cache_dir=cache)


def test_other_local_ranks_wait_for_rank_zero(
    workspace_dir: Path, control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LOCAL_RANK", "1")
    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    # hi-ml's form: a bare file name is in the run's checkpoints folder
    target = tmp_path / "c" / "azureml" / "job_9" / "outputs" / "checkpoints" / "best.ckpt"

    def rank_zero_finishes() -> None:
        time.sleep(0.6)
        target.parent.mkdir(parents=True)
        target.write_bytes(b"x")

    worker = threading.Thread(target=rank_zero_finishes)
    worker.start()
    found = resolve_checkpoint("job_9:best.ckpt", host=host, cache_dir=tmp_path / "c")
    worker.join()
    assert found == target  # rank 1 never asked the workspace: job_9 is unknown to it


def test_himl_azure_download_run_fetches_a_jobs_outputs(
    workspace_dir: Path,
    control_plane: ControlPlane,
    fresh_containers: BlobServiceClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from himl_kernel.cli.main import main

    control_plane.jobs_by_name["finished_job_3"] = object()
    put_checkpoint(fresh_containers, "finished_job_3", b"last")
    log = fresh_containers.get_blob_client(ARTIFACT_CONTAINER, "ExperimentRun/dcid.finished_job_3/outputs/metrics.csv")
    log.upload_blob(
        b"epoch,loss\n1,0.5\n",
        content_settings=ContentSettings(content_md5=hashlib.md5(b"epoch,loss\n1,0.5\n").digest()),
    )
    assert main(["azure", "download-run", "finished_job_3", "--dest", "fetched"]) == 0
    assert (workspace_dir / "fetched" / "checkpoints" / "last.ckpt").read_bytes() == b"last"
    assert (workspace_dir / "fetched" / "metrics.csv").read_text() == "epoch,loss\n1,0.5\n"
    assert main(["azure", "download-run", "no_such_job"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("himl: error:")]
    assert errors == ["himl: error: run id 'no_such_job' does not exist in AzureML workspace 'himl-ws'"]


def test_target_folders_are_links_to_where_azureml_put_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mounted = tmp_path / "mnt" / "INPUT_0"
    mounted.mkdir(parents=True)
    (mounted / "a.txt").write_text("a")
    target = tmp_path / "wanted" / "mnist"
    env = {
        "AZUREML_RUN_ID": "job_1",
        "AZURE_ML_INPUT_INPUT_0": str(mounted),
        "AZURE_ML_OUTPUT_OUTPUT_0": str(tmp_path / "mnt" / "OUTPUT_0"),
        "HIML_TARGET_FOLDERS": json.dumps({"INPUT_0": str(target)}),
    }
    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    info = host.detect_run(env)
    assert info is not None
    assert info.input_datasets == [target] and (target / "a.txt").read_text() == "a"
    assert info.output_datasets == [tmp_path / "mnt" / "OUTPUT_0"]
    assert host.detect_run(env).input_datasets == [target]  # type: ignore[union-attr]  # a second process too


def test_runs_download_and_tb_accept_azureml_job_ids(
    workspace_dir: Path,
    control_plane: ControlPlane,
    fresh_containers: BlobServiceClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from himl_kernel.cli.main import main

    control_plane.jobs_by_name["trained_job_5"] = object()
    put_checkpoint(fresh_containers, "trained_job_5", b"weights")
    events_dir = workspace_dir / "made_events"
    writer = SummaryWriter(log_dir=str(events_dir))
    writer.add_scalar("val/loss", 0.5, 1)
    writer.close()
    (event_file,) = events_dir.glob("events.out.tfevents.*")
    data = event_file.read_bytes()
    blob = fresh_containers.get_blob_client(
        ARTIFACT_CONTAINER, f"ExperimentRun/dcid.trained_job_5/logs/{event_file.name}"
    )
    blob.upload_blob(data, content_settings=ContentSettings(content_md5=hashlib.md5(data).digest()))

    assert main(["runs", "download", "trained_job_5", "--dest", "got"]) == 0
    assert (workspace_dir / "got" / "outputs" / "checkpoints" / "last.ckpt").read_bytes() == b"weights"
    assert (workspace_dir / "got" / "logs" / event_file.name).read_bytes() == data

    capsys.readouterr()
    assert main(["tb", "trained_job_5", "--print-only", "--dest", "tb"]) == 0
    label, _, folder = capsys.readouterr().out.strip().partition(":")
    assert label == "trained_job_5" and (Path(folder) / event_file.name).read_bytes() == data

    assert main(["runs", "download", "no_such_job"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("himl: error:")]
    assert errors == ["himl: error: run id 'no_such_job' does not exist in AzureML workspace 'himl-ws'"]
