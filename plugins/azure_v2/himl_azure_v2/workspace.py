"""The connection to an AzureML workspace: an ``MLClient`` and blob containers of its datastores.

:class:`Workspace` is made from a :class:`~himl_azure_v2.config.WorkspaceConfig`
and builds the credential and the client on first use, so commands that never
reach Azure (``--dry-run``) need neither.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from himl_azure_v2.config import WorkspaceConfig, find_workspace_config
from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.core.credentials import TokenCredential
    from azure.storage.blob import ContainerClient

#: The datastore every AzureML workspace has; datasets without a datastore live there.
DEFAULT_DATASTORE = "workspaceblobstore"
#: Replaces the blob account URL derived from a datastore (an emulator such as
#: Azurite, or a private endpoint): ``http://127.0.0.1:10000/devstoreaccount1``.
ENV_BLOB_ACCOUNT_URL = "HIML_BLOB_ACCOUNT_URL"


class Workspace:
    """One AzureML workspace, connected lazily."""

    def __init__(self, config: WorkspaceConfig, credential: TokenCredential | None = None) -> None:
        self.config = config
        self._credential = credential

    @classmethod
    def from_config(cls, config_file: str | Path | None = None) -> Workspace:
        """The workspace named by ``config_file``, a ``config.json`` above here, or the ``HIML_*`` variables."""
        return cls(find_workspace_config(config_file))

    @classmethod
    def from_client(cls, client: MLClient) -> Workspace:
        """The workspace an ``MLClient`` is connected to (hi-ml's ``ml_client`` argument), using that client."""
        names = (client.subscription_id, client.resource_group_name, client.workspace_name)
        if not all(names):
            raise HimlError("ml_client must be an MLClient for one workspace (subscription, resource group and name)")
        config = WorkspaceConfig(str(names[0]), str(names[1]), str(names[2]), "the given ml_client")
        workspace = cls(config, credential=getattr(client, "_credential", None))
        workspace.__dict__["client"] = client  # the cached client: no second connection is made
        return workspace

    @property
    def credential(self) -> TokenCredential:
        if self._credential is None:
            from himl_azure_v2.credentials import build_credential

            self._credential = build_credential()
        return self._credential

    @cached_property
    def client(self) -> MLClient:
        from azure.ai.ml import MLClient

        return MLClient(
            self.credential,
            subscription_id=self.config.subscription_id,
            resource_group_name=self.config.resource_group,
            workspace_name=self.config.workspace_name,
        )

    def studio_url(self, job_name: str) -> str:
        """The job's page in the AzureML studio."""
        return f"https://ml.azure.com/runs/{job_name}?wsid={self.config.workspace_id}"

    def container(self, datastore: str = "", *, retries: int = 3) -> ContainerClient:
        """The blob container behind ``datastore`` (default: the workspace's blob store).

        Args:
            datastore: the datastore's name; empty means ``workspaceblobstore``.
            retries: how often a failed request is retried (with exponential back-off).

        Raises:
            HimlError: the datastore does not exist or is not an Azure blob datastore.
        """
        from azure.core.exceptions import ResourceNotFoundError
        from azure.storage.blob import ContainerClient, ExponentialRetry

        name = datastore or DEFAULT_DATASTORE
        try:
            store: Any = self.client.datastores.get(name, include_secrets=True)
        except ResourceNotFoundError:
            raise HimlError(f"datastore {name!r} does not exist in workspace {self.config.workspace_name!r}") from None
        if getattr(store, "container_name", None) is None or getattr(store, "account_name", None) is None:
            raise HimlError(f"datastore {name!r} is a {type(store).__name__}; himl transfers only blob datastores")
        account_url = os.environ.get(ENV_BLOB_ACCOUNT_URL, "").strip().rstrip("/") or (
            f"{store.protocol or 'https'}://{store.account_name}.blob.{store.endpoint or 'core.windows.net'}"
        )
        credential: Any = self.credential
        secrets = getattr(store, "credentials", None)
        key = getattr(secrets, "account_key", None)
        sas = getattr(secrets, "sas_token", None)
        if key:
            credential = {"account_name": store.account_name, "account_key": key}
        elif sas:
            credential = sas
        retry = ExponentialRetry(initial_backoff=2, increment_base=2, retry_total=retries)
        return ContainerClient(
            account_url,
            store.container_name,
            credential=credential,
            retry_policy=retry,
            connection_timeout=20,
            max_single_put_size=8 << 20,  # larger files go in blocks, several at once
            max_block_size=4 << 20,
            max_single_get_size=8 << 20,
            max_chunk_get_size=4 << 20,
        )
