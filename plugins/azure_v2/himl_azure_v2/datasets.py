"""Datasets as AzureML ``uri_folder`` data assets.

At submission, every input dataset must be a data asset: a pinned version must
exist; without a version, the latest is used, and a dataset that has none yet is
created as version 1 pointing at ``<datastore>/<name>/``. Inside the job, the
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


def find_asset(client: MLClient, dataset: DatasetConfig) -> Data | None:
    """The data asset for ``dataset`` (its pinned version, else its latest); None when it has none at all.

    Raises:
        HimlError: the pinned version does not exist.
    """
    from azure.core.exceptions import ResourceNotFoundError

    if dataset.version is not None and str(dataset.version) not in ("", "latest"):
        try:
            found: Data = client.data.get(dataset.name, version=str(dataset.version))
            return found
        except ResourceNotFoundError:
            versions = sorted(str(d.version) for d in client.data.list(name=dataset.name))
            raise HimlError(
                f"dataset {dataset.name!r} has no version {dataset.version!r} in workspace {client.workspace_name!r}; "
                f"versions: {', '.join(versions) if versions else '(none: the dataset does not exist)'}"
            ) from None
    try:
        latest: Data = client.data.get(dataset.name, label="latest")
        return latest
    except ResourceNotFoundError:
        return None


def ensure_input_assets(client: MLClient, datasets: list[DatasetConfig]) -> None:
    """Make sure each input dataset is a data asset, creating version 1 of those that are not."""
    from azure.ai.ml.entities import Data

    for dataset in datasets:
        if find_asset(client, dataset) is None:
            path = f"azureml://datastores/{dataset.datastore or DEFAULT_DATASTORE}/paths/{dataset.name}/"
            client.data.create_or_update(Data(name=dataset.name, version="1", type="uri_folder", path=path))
            print(f"himl: created data asset {dataset.name}:1 at {path}", file=sys.stderr)


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
