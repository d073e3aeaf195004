"""The manual's chapter 9 ("DOWNLOADING FROM/ UPLOADING TO AZURE ML"), each example with only its import changed.

The run's files live in the workspace's artifact store and the datastores in
Azurite; the manual's placeholder names (``example_run_id_123``,
``datastore_name``, ``path/to/...``) are given real things to point at.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from azure.ai.ml.entities import AzureBlobDatastore
from azure.storage.blob import BlobServiceClient, ContentSettings

from tests.azure_v2.control_plane import (
    ARTIFACT_CONTAINER,
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    BLOB_CONTAINER,
    ControlPlane,
)
from tests.manual.conftest import as_himl

RUN_FILES = {
    "abc/def/1.txt": b"1",
    "abc/2.txt": b"2",
    "outputs/checkpoints/last.ckpt": b"last",
    "outputs/checkpoints/best.ckpt": b"best",
    "outputs/metrics.csv": b"epoch\n",
}


@pytest.fixture
def example_run(control_plane: ControlPlane, fresh_containers: BlobServiceClient) -> str:
    control_plane.jobs_by_name["example_run_id_123"] = object()
    for path, data in RUN_FILES.items():
        blob = fresh_containers.get_blob_client(ARTIFACT_CONTAINER, f"ExperimentRun/dcid.example_run_id_123/{path}")
        blob.upload_blob(data, overwrite=True, content_settings=ContentSettings(content_md5=hashlib.md5(data).digest()))
    from azure.ai.ml.entities import AccountKeyConfiguration

    control_plane.datastores.append(
        AzureBlobDatastore(
            name="datastore_name",
            account_name=AZURITE_ACCOUNT,
            container_name=BLOB_CONTAINER,
            credentials=AccountKeyConfiguration(account_key=AZURITE_KEY),
        )
    )
    return "example_run_id_123"


def _tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_9_1_download_files_from_run_id(workspace_dir: Path, example_run: str) -> None:
    exec(
        as_himl(
            "from pathlib import Path\n"
            "from health_azure import download_files_from_run_id\n"
            'run_id = "example_run_id_123"\n'
            'output_folder = Path("path/to/save")\n'
            "download_files_from_run_id(run_id, output_folder)\n"
        ),
        {},
    )
    assert _tree(workspace_dir / "path" / "to" / "save") == sorted(RUN_FILES)
    # "you specify the prefix abc and the output_folder my_outputs: my_outputs/abc/def/1.txt, my_outputs/abc/2.txt"
    exec(
        as_himl(
            'from health_azure import download_files_from_run_id\ndownload_files_from_run_id("example_run_id_123", '
            '"my_outputs", prefix="abc")\n'
        ),
        {},
    )
    assert _tree(workspace_dir / "my_outputs") == ["abc/2.txt", "abc/def/1.txt"]


def test_9_2_download_checkpoints_from_run_id(workspace_dir: Path, example_run: str) -> None:
    exec(
        as_himl(
            "from pathlib import Path\n"
            "from health_azure import download_checkpoints_from_run_id\n"
            'download_checkpoints_from_run_id("example_run_id_123", Path("path/to/checkpoint/directory"))\n'
        ),
        {},
    )
    folder = workspace_dir / "path" / "to" / "checkpoint" / "directory"
    assert _tree(folder) == ["outputs/checkpoints/best.ckpt", "outputs/checkpoints/last.ckpt"]


def test_9_4_upload_then_9_3_download_from_datastore(
    workspace_dir: Path, example_run: str, fresh_containers: BlobServiceClient
) -> None:
    local = workspace_dir / "path" / "to" / "local" / "data" / "folder"
    local.mkdir(parents=True)
    (local / "1.txt").write_text("one")
    (local / "2.txt").write_text("two")
    exec(
        as_himl(
            "from pathlib import Path\n"
            "from health_azure import upload_to_datastore\n"
            'upload_to_datastore("datastore_name", Path("path/to/local/data/folder"), '
            'Path("path/to/datastore/folder"))\n'
        ),
        {},
    )
    names = sorted(b.name for b in fresh_containers.get_container_client(BLOB_CONTAINER).list_blobs())
    assert names == ["path/to/datastore/folder/1.txt", "path/to/datastore/folder/2.txt"]  # no local folder name
    exec(
        as_himl(
            "from pathlib import Path\n"
            "from health_azure import download_from_datastore\n"
            'download_from_datastore("datastore_name", "path/to/datastore", Path("path/to/output/directory") )\n'
        ),
        {},
    )
    assert _tree(workspace_dir / "path" / "to" / "output" / "directory") == [
        "path/to/datastore/folder/1.txt",
        "path/to/datastore/folder/2.txt",
    ]
