"""Fixtures for the AzureML plugin: Azurite, the control-plane stand-in, a workspace folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.ai.ml import MLClient
from azure.storage.blob import BlobServiceClient

from tests.azure_v2.azurite import Azurite
from tests.azure_v2.control_plane import (
    ARTIFACT_CONTAINER,
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    BLOB_CONTAINER,
    ControlPlane,
)

#: A secret planted in the environment: no output, tag, snapshot or dry run may show it.
PLANTED_SECRET = "planted-Secret-0f9e8d7c6b5a"
_AZURE_VARIABLES = (
    "HIML_SUBSCRIPTION_ID",
    "HIML_RESOURCE_GROUP",
    "HIML_WORKSPACE_NAME",
    "HIML_SERVICE_PRINCIPAL_ID",
    "HIML_SERVICE_PRINCIPAL_PASSWORD",
    "HIML_TENANT_ID",
    "HIML_BLOB_ACCOUNT_URL",
    "AZUREML_RUN_ID",
    "AZUREML_ROOT_RUN_ID",
    "AZUREML_PARENT_RUN_ID",
    "LOCAL_RANK",
    "OMPI_COMM_WORLD_LOCAL_RANK",
)


def staged_files(folder: Path) -> list[str]:
    """The files of a staged code folder as the SDK's upload sees them (following its links)."""
    found = []
    for dirpath, _, filenames in os.walk(folder, followlinks=True):
        found += [(Path(dirpath) / name).relative_to(folder).as_posix() for name in filenames]
    return sorted(found)


@pytest.fixture(autouse=True)
def _no_azure_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith(("AZURE_ML_INPUT_", "AZURE_ML_OUTPUT_")):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def blob_service(server: Azurite) -> BlobServiceClient:
    return BlobServiceClient(
        server.account_url, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}
    )


@pytest.fixture
def fresh_containers(azurite: Azurite) -> Iterator[BlobServiceClient]:
    """Empty blob containers behind the canned datastores."""
    service = blob_service(azurite)
    for name in (BLOB_CONTAINER, ARTIFACT_CONTAINER):
        container = service.get_container_client(name)
        if container.exists():
            container.delete_container()
        container.create_container()
    yield service


@pytest.fixture
def control_plane(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ControlPlane:
    """MLClient's operations replaced by the recorder; the rest of the SDK is real."""
    plane = ControlPlane(mlflow_tracking_uri=f"sqlite:///{tmp_path / 'workspace-mlflow.db'}")
    for name, ops in plane.operations().items():
        monkeypatch.setattr(MLClient, name, property(lambda self, ops=ops: ops))
    return plane


@pytest.fixture
def workspace_dir(
    himl_home: Path, control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch, azurite: Azurite
) -> Path:
    """The current folder: a project with config.json; a service principal (with the planted secret) set."""
    folder = Path.cwd()
    (folder / "config.json").write_text(control_plane.config_json(), encoding="utf-8")
    monkeypatch.setenv("HIML_SERVICE_PRINCIPAL_ID", "11111111-2222-3333-4444-555555555555")
    monkeypatch.setenv("HIML_SERVICE_PRINCIPAL_PASSWORD", PLANTED_SECRET)
    monkeypatch.setenv("HIML_TENANT_ID", "66666666-7777-8888-9999-000000000000")
    monkeypatch.setenv("HIML_BLOB_ACCOUNT_URL", azurite.account_url)
    return folder
