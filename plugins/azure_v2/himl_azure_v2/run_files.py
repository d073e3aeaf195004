"""hi-ml's ``download_files_from_run_id`` and ``download_checkpoints_from_run_id`` for AzureML jobs (SDK v2).

The files of a job live in the workspace's artifact store below
``ExperimentRun/dcid.<job>/``. hi-ml keeps their path in the run below the
local folder (``outputs/checkpoints/last.ckpt`` lands at
``<output_folder>/outputs/checkpoints/last.ckpt``); so do these functions. A
prefix that names one file downloads that file; every file is checked against
its stored MD5, as all of himl's downloads are.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_azure_v2.workspace import Workspace


def _run_prefix(prefix: str) -> str:
    parts = PurePosixPath(prefix.replace("\\", "/").strip("/")).parts
    if ".." in parts:
        raise HimlError(f"prefix {prefix!r} must name files inside the run, without '..'")
    return "/".join(parts)


def download_files_from_run_id(
    run_id: str,
    output_folder: str | Path,
    prefix: str = "",
    workspace: Workspace | None = None,
    workspace_config_path: str | Path | None = None,
    validate_checksum: bool = True,
) -> list[Path]:
    """Download the files of AzureML job ``run_id`` whose path starts with the folder (or file) ``prefix``.

    Args:
        run_id: the job's name (its run id).
        output_folder: where the files go, each at its path inside the run.
        prefix: a folder (``outputs/checkpoints``) or one file of the run; empty: every file.
        workspace: the workspace; default: the one ``workspace_config_path`` (or config.json) names.
        workspace_config_path: a workspace config.json.
        validate_checksum: kept for hi-ml's callers; every download is MD5-checked, and False is refused.

    Returns:
        The local files, sorted.
    """
    if not validate_checksum:
        raise HimlError("download_files_from_run_id: validate_checksum=False is not offered; every file is checked")
    from himl_azure_v2.checkpoints import ARTIFACT_DATASTORE, require_job
    from himl_azure_v2.transfer import download_blob, download_folder
    from himl_azure_v2.workspace import Workspace

    ws = workspace or Workspace.from_config(workspace_config_path)
    require_job(ws, run_id)
    container = ws.container(ARTIFACT_DATASTORE)
    base = f"ExperimentRun/dcid.{run_id}/"
    inside = _run_prefix(prefix)
    target = Path(output_folder).expanduser()
    if inside:
        for blob in container.list_blobs(name_starts_with=base + inside):
            if blob.name == base + inside:  # the prefix names one file
                local = target / inside
                download_blob(container, blob, local)
                return [local]
    try:
        download_folder(container, base + inside, target / inside if inside else target, show_progress=False)
    except HimlError:
        raise HimlError(f"AzureML run {run_id!r} has no files below {inside or '/'!r}") from None
    folder = target / inside if inside else target
    return sorted(p for p in folder.rglob("*") if p.is_file())


#: Where a run keeps its checkpoints (hi-ml's and himl's runner).
CHECKPOINT_FOLDER = "outputs/checkpoints"


def download_checkpoints_from_run_id(
    run_id: str,
    checkpoint_path_or_folder: str | Path,
    output_folder: str | Path | None = None,
    aml_workspace: Workspace | None = None,
    workspace_config_path: str | Path | None = None,
) -> list[Path]:
    """hi-ml's checkpoint download: one checkpoint file or a folder of them, at their paths inside the run.

    Called with two arguments, as the manual's example does
    (``download_checkpoints_from_run_id(run_id, Path("dir"))``), the second is
    the output folder and the run's checkpoint folder is downloaded into it
    (hi-ml's own signature needs three, so that example failed there).
    """
    if output_folder is None:
        output_folder, checkpoint_path_or_folder = checkpoint_path_or_folder, CHECKPOINT_FOLDER
    return download_files_from_run_id(
        run_id,
        output_folder,
        prefix=checkpoint_path_or_folder
        if isinstance(checkpoint_path_or_folder, str)
        else checkpoint_path_or_folder.as_posix(),
        workspace=aml_workspace,
        workspace_config_path=workspace_config_path,
    )


def is_running_in_azure_ml() -> bool:
    """True inside an AzureML job (hi-ml's check, made from the variables AzureML sets)."""
    import os

    from himl_azure_v2.injob import is_inside_azureml

    return is_inside_azureml(os.environ)
