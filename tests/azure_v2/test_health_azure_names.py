"""health_azure's names from himl_azure_v2: run files and checkpoints of a job, at their paths in the run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import himl_azure_v2
import pytest
from azure.storage.blob import BlobServiceClient, ContentSettings

from himl_kernel.errors import HimlError
from tests.azure_v2.control_plane import ARTIFACT_CONTAINER, ControlPlane


def put(service: BlobServiceClient, run_id: str, path: str, data: bytes) -> None:
    blob = service.get_blob_client(ARTIFACT_CONTAINER, f"ExperimentRun/dcid.{run_id}/{path}")
    blob.upload_blob(data, overwrite=True, content_settings=ContentSettings(content_md5=hashlib.md5(data).digest()))


@pytest.fixture
def finished_job(control_plane: ControlPlane, fresh_containers: BlobServiceClient) -> str:
    control_plane.jobs_by_name["job_42"] = object()
    put(fresh_containers, "job_42", "outputs/checkpoints/last.ckpt", b"last")
    put(fresh_containers, "job_42", "outputs/checkpoints/best.ckpt", b"best")
    put(fresh_containers, "job_42", "outputs/metrics.csv", b"epoch,loss\n")
    put(fresh_containers, "job_42", "logs/std_log.txt", b"log")
    return "job_42"


def test_download_files_from_run_id_keeps_each_files_path_in_the_run(
    workspace_dir: Path, finished_job: str, tmp_path: Path
) -> None:
    got = himl_azure_v2.download_files_from_run_id(finished_job, tmp_path / "a", prefix="outputs/checkpoints")
    assert [p.relative_to(tmp_path / "a").as_posix() for p in got] == [
        "outputs/checkpoints/best.ckpt",
        "outputs/checkpoints/last.ckpt",
    ]
    everything = himl_azure_v2.download_files_from_run_id(finished_job, tmp_path / "b")
    assert {p.relative_to(tmp_path / "b").as_posix() for p in everything} == {
        "outputs/checkpoints/best.ckpt",
        "outputs/checkpoints/last.ckpt",
        "outputs/metrics.csv",
        "logs/std_log.txt",
    }


def test_download_checkpoints_from_run_id_fetches_one_file_or_a_folder(
    workspace_dir: Path, finished_job: str, tmp_path: Path
) -> None:
    (one,) = himl_azure_v2.download_checkpoints_from_run_id(finished_job, "outputs/checkpoints/best.ckpt", tmp_path)
    assert one == tmp_path / "outputs" / "checkpoints" / "best.ckpt" and one.read_bytes() == b"best"
    with pytest.raises(HimlError, match=r"^AzureML run 'job_42' has no files below 'outputs/nothing'$"):
        himl_azure_v2.download_checkpoints_from_run_id(finished_job, "outputs/nothing", tmp_path)
    with pytest.raises(HimlError, match=r"^run id 'nope' does not exist in AzureML workspace 'himl-ws'$"):
        himl_azure_v2.download_files_from_run_id("nope", tmp_path)
    with pytest.raises(HimlError, match=r"without '\.\.'"):
        himl_azure_v2.download_files_from_run_id(finished_job, tmp_path, prefix="../other")


def test_is_running_in_azure_ml_and_dataset_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from himl_kernel.datasets import DatasetConfig

    assert not himl_azure_v2.is_running_in_azure_ml()
    monkeypatch.setenv("AZUREML_RUN_ID", "job_1")
    assert himl_azure_v2.is_running_in_azure_ml()
    assert himl_azure_v2.DatasetConfig is DatasetConfig


def test_a_dataset_named_without_a_workspace_is_none_here_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import himl_azure_v2.plugin

    from himl_kernel.dataset_prep import prepare_datasets
    from himl_kernel.datasets import DatasetConfig
    from himl_kernel.testing import fresh_host

    for name in ("HIML_SUBSCRIPTION_ID", "HIML_RESOURCE_GROUP", "HIML_WORKSPACE_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    host = fresh_host(himl_azure_v2.plugin, names=["azure_v2"])
    local = tmp_path / "here"
    local.mkdir()
    datasets = [DatasetConfig(name="mydata"), DatasetConfig(name="other", local_folder=local)]
    assert prepare_datasets(host, datasets, role="input") == [None, local.resolve()]
    warnings = capsys.readouterr().err.splitlines()
    assert warnings == [
        "himl: warning: input dataset 'mydata' is not fetched: no AzureML workspace is configured (config.json), "
        "so its folder is None here"
    ]
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")  # a broken config stays an error
    with pytest.raises(HimlError):
        prepare_datasets(host, datasets[:1], role="input")
