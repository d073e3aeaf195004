"""Checkpoint source for ``AZUREML_RUN_ID:path``: a file an AzureML job wrote.

The path is relative to the job's files; ``checkpoints/last.ckpt`` means
``outputs/checkpoints/last.ckpt``. The file is downloaded from the workspace's
artifact store into the cache once, checked against the blob's MD5. In a
distributed job only local rank zero downloads; the other processes wait for
the file to appear.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from himl_kernel.checkpoints import parse_run_reference
from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_azure_v2.transfer import TransferReport
    from himl_azure_v2.workspace import Workspace
    from himl_kernel.plugins import PluginHost

ARTIFACT_DATASTORE = "workspaceartifactstore"
DEFAULT_CHECKPOINT = "outputs/checkpoints/last.ckpt"
WAIT_FOR_RANK_ZERO_S = 1800.0
_RANK_VARIABLES = ("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")


def local_rank(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    for name in _RANK_VARIABLES:
        value = env.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 0


def run_file_path(path: str) -> str:
    """The path inside the run's files: ``outputs/`` is added unless the path names a top folder itself."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if ".." in parts or not parts:
        raise HimlError(f"checkpoint path {path!r} must name a file inside the run's files")
    return "/".join(parts) if parts[0] in ("outputs", "logs") else "/".join(("outputs", *parts))


class AzureRunCheckpointSource:
    """Resolves ``AZUREML_RUN_ID:path`` by downloading from the workspace.

    Args:
        workspace: the workspace; by default the configured one. When none is
            configured the source steps aside (returns None).
    """

    def __init__(self, workspace: Workspace | None = None) -> None:
        self._workspace = workspace

    def _find_workspace(self) -> Workspace | None:
        if self._workspace is not None:
            return self._workspace
        from himl_azure_v2.workspace import Workspace

        try:
            return Workspace.from_config()
        except HimlError:
            return None

    def resolve(self, reference: str, *, cache_dir: Path, host: PluginHost) -> Path | None:
        parsed = parse_run_reference(reference)
        if parsed is None:
            return None
        run_id, path = parsed
        workspace = self._find_workspace()
        if workspace is None:
            return None
        blob_path = run_file_path(path)
        local = cache_dir / "azureml" / run_id / blob_path
        if local.is_file():
            return local
        if local_rank() != 0:
            return wait_for(local, WAIT_FOR_RANK_ZERO_S)
        require_job(workspace, run_id)
        from azure.core.exceptions import ResourceNotFoundError

        from himl_azure_v2.transfer import download_blob

        container = workspace.container(ARTIFACT_DATASTORE)
        blob_name = f"ExperimentRun/dcid.{run_id}/{blob_path}"
        try:
            blob = container.get_blob_client(blob_name).get_blob_properties()
        except ResourceNotFoundError:
            raise HimlError(f"AzureML run {run_id!r} has no file {blob_path!r}") from None
        blob.name = blob_name
        download_blob(container, blob, local)
        return local


def require_job(workspace: Workspace, run_id: str) -> None:
    """A one-line error when the workspace has no job ``run_id``."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        workspace.client.jobs.get(run_id)
    except ResourceNotFoundError:
        raise HimlError(
            f"run id {run_id!r} does not exist in AzureML workspace {workspace.config.workspace_name!r}"
        ) from None


def download_run_files(
    run_id: str,
    path: str,
    dest: Path,
    *,
    config_file: str | Path | None = None,
    workspace: Workspace | None = None,
    **transfer: Any,
) -> TransferReport:
    """Download a folder of an AzureML job's files (``outputs``, ``logs``...) from the artifact store."""
    from himl_azure_v2.transfer import download_folder
    from himl_azure_v2.workspace import Workspace

    transfer.pop("datastore", None)
    ws = workspace or Workspace.from_config(config_file)
    require_job(ws, run_id)
    folder = "/".join(PurePosixPath(path.replace("\\", "/").strip("/")).parts) or "outputs"
    return download_folder(ws.container(ARTIFACT_DATASTORE), f"ExperimentRun/dcid.{run_id}/{folder}", dest, **transfer)


def wait_for(path: Path, timeout_s: float) -> Path:
    """Wait until local rank zero has put ``path`` in place."""
    deadline = time.monotonic() + timeout_s
    while not path.is_file():
        if time.monotonic() > deadline:
            raise HimlError(f"waited {timeout_s:.0f} s for local rank 0 to download {str(path)!r}")
        time.sleep(0.5)
    return path


class AzureJobFiles:
    """An AzureML job's files, for ``himl runs download`` and ``himl tb`` (through ``himl_locate_run``)."""

    def __init__(self, workspace: Workspace, run_id: str) -> None:
        self.workspace = workspace
        self.run_id = run_id

    @property
    def where(self) -> str:
        return f"AzureML workspace {self.workspace.config.workspace_name!r}"

    def download(self, path: str, dest: Path) -> Path:
        folders = [path.strip("/")] if path.strip("/") else ["outputs", "logs"]
        for folder in folders:
            download_run_files(self.run_id, folder, dest / folder, workspace=self.workspace, show_progress=False)
        return dest / folders[0] if len(folders) == 1 else dest


def locate_job(run_id: str) -> AzureJobFiles | None:
    """The job ``run_id`` of the configured workspace; None when no workspace is configured here."""
    from himl_azure_v2.config import find_workspace_config
    from himl_azure_v2.workspace import Workspace

    try:
        config = find_workspace_config()
    except HimlError:
        return None  # no workspace here: the id is not ours to explain
    workspace = Workspace(config)
    require_job(workspace, run_id)
    return AzureJobFiles(workspace, run_id)
