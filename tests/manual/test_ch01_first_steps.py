"""The manual's chapter 1 ("FIRST STEPS"): the image-resizing script, here, with ``--azureml``, and inside the job."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.ai.ml.entities import AmlCompute, AzureBlobDatastore

from tests.azure_v2.control_plane import AZURITE_ACCOUNT, BLOB_CONTAINER, ControlPlane
from tests.conftest import run_script
from tests.manual.conftest import as_himl

#: The manual's section 1.2 script, as printed (page breaks removed). ``read_image`` and ``write_image`` are left
#: undefined there; STAND_INS defines the smallest ones (the manual's ``write_image`` is called with a path only).
MANUAL_SCRIPT = """
from pathlib import Path
from health_azure import submit_to_azure_if_needed
if __name__ == '__main__':
    current_file = Path(__file__)
    run_info = submit_to_azure_if_needed(compute_cluster_name="preprocess-ds12",
                                         input_datasets=["images123"],
                                         # Omit this line if you don't create an output dataset (for example, in
                                         # model training scripts)
                                         output_datasets=["images123_resized"],
                                         default_datastore="my_datastore")
    # When running in AzureML, run_info.input_datasets and run_info.output_datasets will be populated,
    # and point to the data coming from blob storage. For runs outside AML, the paths will be None.
    # Replace the None with a meaningful path, so that we can still run the script easily outside AML.
    input_dataset = run_info.input_datasets[0] or Path("/tmp/my_dataset")
    output_dataset = run_info.output_datasets[0] or Path("/tmp/my_output")
    files_processed = []
    for file in input_dataset.glob("*.jpg"):
        contents = read_image(file)
        resized = contents.resize(0.5)
        write_image(output_dataset / file.name)
        files_processed.append(file.name)
    # Any other files that you would not consider an "output dataset", like metrics, etc, should be written to
    # a folder "./outputs". Any files written into that folder will later be visible in the AzureML UI.
    # run_info.output_folder already points to the correct folder.
    stats_file = run_info.output_folder / "processed_files.txt"
    stats_file.write_text("\\n".join(files_processed))
"""
STAND_INS = """
class _Image:
    def resize(self, factor):
        return self


def read_image(path):
    return _Image()


def write_image(path):
    path.write_bytes(b"resized")
"""


def _script(folder: Path, data: Path, out: Path) -> Path:
    # The manual's local fallback folders are /tmp/...; the test points them at its own folder.
    code = as_himl(MANUAL_SCRIPT).replace("/tmp/my_dataset", str(data)).replace("/tmp/my_output", str(out))
    script = folder / "resize.py"
    script.write_text(STAND_INS + code)
    return script


def _images(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"jpeg")


@pytest.mark.slow  # a local run records itself in a new MLflow store (~18 s on a loaded machine)
def test_locally_the_datasets_are_none_and_the_fallback_folders_are_used(
    himl_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = tmp_path / "my_dataset", tmp_path / "my_output"
    _images(data, "a.jpg", "b.jpg", "notes.txt")
    out.mkdir()
    assert run_script(_script(tmp_path, data, out), monkeypatch=monkeypatch) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.jpg"]
    warnings = [line for line in capsys.readouterr().err.splitlines() if "images123" in line]
    assert warnings == [
        "himl: warning: input dataset 'images123' is not fetched: no AzureML workspace is configured "
        "(config.json), so its folder is None here"
    ]
    (stats,) = himl_home.rglob("processed_files.txt")  # in the local run's outputs
    assert sorted(stats.read_text().splitlines()) == ["a.jpg", "b.jpg"]


def test_with_azureml_the_job_is_what_the_manual_describes(
    workspace_dir: Path, control_plane: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    control_plane.clusters.append(AmlCompute(name="preprocess-ds12", size="STANDARD_DS12_V2", max_instances=1))
    control_plane.datastores.append(
        AzureBlobDatastore(name="my_datastore", account_name=AZURITE_ACCOUNT, container_name=BLOB_CONTAINER)
    )
    (workspace_dir / "environment.yml").write_text("name: t\ndependencies:\n  - python=3.10\n")
    script = _script(workspace_dir, tmp_path / "unused", tmp_path / "unused")
    assert run_script(script, "--azureml", monkeypatch=monkeypatch) == 0
    (job,) = control_plane.submitted
    rest = job.rest["properties"]
    assert rest["jobType"] == "Command" and rest["computeId"] == "preprocess-ds12"
    assert rest["command"] == "python resize.py"
    assert rest["experimentName"] == "resize"
    # "it will create one from all the files in blob storage in folder images123", in my_datastore; the output
    # is registered as a dataset too
    assert [(d["name"], d["version"], d["path"]) for d in control_plane.created_data] == [
        ("images123", "1", "azureml://datastores/my_datastore/paths/images123/"),
        ("images123_resized", "1", "azureml://datastores/my_datastore/paths/images123_resized/"),
    ]
    assert rest["inputs"] == {
        "INPUT_0": {"uri": "azureml:images123@latest", "mode": "Download", "jobInputType": "uri_folder"}
    }
    assert rest["outputs"] == {
        "OUTPUT_0": {
            "uri": "azureml://datastores/my_datastore/paths/images123_resized/",
            "mode": "ReadWriteMount",
            "jobOutputType": "uri_folder",
        }
    }
    assert rest["resources"] == {"instanceCount": 1, "shmSize": "100g", "properties": {}}
    assert rest["distribution"] == {"distributionType": "Mpi", "processCountPerInstance": 1}
    assert (Path.cwd() / "most_recent_run.txt").read_text() == "himl_test_job_1"


def test_inside_the_job_it_reads_the_input_and_writes_the_output(
    workspace_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounted_in, mounted_out = tmp_path / "mnt" / "INPUT_0", tmp_path / "mnt" / "OUTPUT_0"
    _images(mounted_in, "x.jpg")
    mounted_out.mkdir(parents=True)
    monkeypatch.setenv("AZUREML_RUN_ID", "job_in_azure")
    monkeypatch.setenv("AZURE_ML_INPUT_INPUT_0", str(mounted_in))
    monkeypatch.setenv("AZURE_ML_OUTPUT_OUTPUT_0", str(mounted_out))
    monkeypatch.setenv("HIML_LOGGERS", "")
    script = _script(workspace_dir, tmp_path / "unused", tmp_path / "unused")
    assert run_script(script, "--azureml", monkeypatch=monkeypatch) == 0
    assert [p.name for p in mounted_out.iterdir()] == ["x.jpg"]
    assert (workspace_dir / "outputs" / "processed_files.txt").read_text() == "x.jpg"
