"""Datasets as AzureML ``uri_folder`` data assets.

At submission, every input and output dataset is made a data asset before the
job is sent, as hi-ml's v2 submission does: without a version, the latest is
used, and a dataset that has none yet is created as version 1 pointing at
``<datastore>/<name>/``; a pinned version that does not exist yet is created at
that path with that version (one line says so). Inside the job, the
folders come from AzureML (see :mod:`himl_azure_v2.injob`). Outside AzureML, an
input without a ``local_folder`` is downloaded from its datastore into its
``target_folder``, or into the cache.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from himl_azure_v2.workspace import DEFAULT_DATASTORE
from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import Data

    from himl_azure_v2.workspace import Workspace
    from himl_kernel.contracts import DatasetRole
    from himl_kernel.datasets import DatasetConfig
    from himl_kernel.runinfo import RunInfo

_DATASTORE_PATH = re.compile(r"azureml://datastores/([^/]+)/paths/(.*)$")


def pinned_version(dataset: DatasetConfig) -> str | None:
    """The version ``dataset`` pins, or None for its latest."""
    text = "" if dataset.version is None else str(dataset.version).strip()
    return None if text in ("", "latest") else text


def find_asset(client: MLClient, dataset: DatasetConfig) -> Data | None:
    """The data asset for ``dataset`` (its pinned version, else its latest); None when that does not exist."""
    from azure.core.exceptions import ResourceNotFoundError

    version = pinned_version(dataset)
    if version is not None:
        try:
            found: Data = client.data.get(dataset.name, version=version)
            return found
        except ResourceNotFoundError:
            return None
    try:
        latest: Data = client.data.get(dataset.name, label="latest")
        return latest
    except ResourceNotFoundError:
        return None


def ensure_assets(client: MLClient, datasets: list[DatasetConfig], role: DatasetRole = "input") -> list[str]:
    """Make each dataset a data asset: the missing ones (or missing pinned versions) are created at
    ``<datastore>/<name>/``, each with one line; returns ``name:version`` of those created."""
    from azure.ai.ml.entities import Data

    created: list[str] = []
    for dataset in datasets:
        if not dataset.name:
            raise HimlError(f"{role} dataset {dataset.label!r} needs a name to be a data asset in an AzureML job")
        if find_asset(client, dataset) is not None:
            continue
        version = pinned_version(dataset) or "1"
        path = f"azureml://datastores/{dataset.datastore or DEFAULT_DATASTORE}/paths/{dataset.name}/"
        client.data.create_or_update(Data(name=dataset.name, version=version, type="uri_folder", path=path))
        why = f"version {version} did not exist" if pinned_version(dataset) else "it did not exist"
        print(f"himl: created {role} data asset {dataset.name}:{version} at {path} ({why})", file=sys.stderr)
        created.append(f"{dataset.name}:{version}")
    return created


def ensure_input_assets(client: MLClient, datasets: list[DatasetConfig]) -> list[str]:
    """Input datasets as data assets (see :func:`ensure_assets`)."""
    return ensure_assets(client, datasets, "input")


def register_output_assets(client: MLClient, datasets: list[DatasetConfig]) -> list[str]:
    """Output datasets registered as named data assets before the job, as hi-ml's v2 outputs are."""
    return ensure_assets(client, datasets, "output")


def datastore_location(client: MLClient, dataset: DatasetConfig) -> tuple[str, str]:
    """(datastore, folder) holding ``dataset``: its data asset's path, else ``<datastore>/<name>/``."""
    asset = find_asset(client, dataset)
    if asset is not None and asset.path:
        match = _DATASTORE_PATH.match(str(asset.path))
        if match:
            return match.group(1), match.group(2)
    return dataset.datastore or DEFAULT_DATASTORE, dataset.name


def _configured_workspace(dataset: DatasetConfig) -> Workspace:
    """The configured workspace; without one, the dataset is unavailable here (None, one warning), as in hi-ml."""
    from himl_azure_v2.config import NoWorkspaceConfigured
    from himl_azure_v2.workspace import Workspace
    from himl_kernel.dataset_prep import DatasetUnavailable

    try:
        return Workspace.from_config()
    except NoWorkspaceConfigured:  # a config that exists but is wrong stays an error of its own
        raise DatasetUnavailable(
            f"input dataset {dataset.name!r} is not fetched: no AzureML workspace is configured (config.json), "
            "so its folder is None here"
        ) from None


class AzureDatasetProvider:
    """Downloads named input datasets from their datastore when running outside AzureML.

    Args:
        workspace: the workspace; by default the configured one, found on first use.
    """

    def __init__(self, workspace: Workspace | None = None) -> None:
        self._workspace = workspace

    def prepare(
        self, dataset: DatasetConfig, *, role: DatasetRole, run: RunInfo | None, cache_dir: Path
    ) -> Path | None:
        if run is not None and run.backend == "azureml":
            return None  # inside the job, AzureML has mounted or downloaded them already
        if role != "input" or not dataset.name or dataset.local_folder is not None:
            return None
        from himl_azure_v2.transfer import download_from_datastore

        workspace = self._workspace or _configured_workspace(dataset)
        datastore, folder = datastore_location(workspace.client, dataset)
        target = Path(dataset.target_folder) if dataset.target_folder else cache_dir / datastore / dataset.name
        print(f"himl: dataset {dataset.name!r}: downloading {datastore}/{folder} to {target}", file=sys.stderr)
        download_from_datastore(folder, target, datastore=datastore, workspace=workspace)
        return target.resolve()
