"""Recognising that this process runs inside an AzureML job, from the variables AzureML sets.

AzureML sets ``AZUREML_RUN_ID`` (the job's name, which is also its MLflow run
id), ``MLFLOW_TRACKING_URI`` (the workspace's MLflow store), ``MLFLOW_RUN_ID``,
and for each job input or output ``AZURE_ML_INPUT_<name>`` /
``AZURE_ML_OUTPUT_<name>`` with the folder where it is mounted or downloaded.
A dataset with a ``target_folder`` appears there too, as a link to that folder
(the backend passes the wish in ``HIML_TARGET_FOLDERS``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from himl_kernel.runinfo import RunInfo

ENV_RUN_ID = "AZUREML_RUN_ID"
ENV_ROOT_RUN_ID = "AZUREML_ROOT_RUN_ID"
ENV_PARENT_RUN_ID = "AZUREML_PARENT_RUN_ID"
_INPUT = re.compile(r"AZURE_ML_INPUT_INPUT_(\d+)$")
_OUTPUT = re.compile(r"AZURE_ML_OUTPUT_OUTPUT_(\d+)$")


#: The backend marker a job carries (``HIML_BACKEND``); this plugin's jobs carry ``azureml``.
ENV_BACKEND = "HIML_BACKEND"


def is_inside_azureml(environ: Mapping[str, str]) -> bool:
    return bool(environ.get(ENV_RUN_ID, "").strip())


def is_other_backends_job(environ: Mapping[str, str]) -> bool:
    """True for a job another backend submitted (``HIML_BACKEND=amulet`` or ``azureml-v1``...).

    Detection goes by that marker first; a job without one (submitted before jobs
    carried it, or by hand) is this plugin's, the default AzureML backend.
    """
    marker = environ.get(ENV_BACKEND, "").strip()
    return bool(marker) and marker != "azureml"


def _targets(environ: Mapping[str, str]) -> dict[str, str]:
    import json

    raw = environ.get("HIML_TARGET_FOLDERS", "")
    try:
        parsed = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}


def _at_target(mounted: Path, target: str) -> Path:
    """``target`` made a link to where AzureML put the data; the mount itself when that is not possible."""
    link = Path(target).expanduser().absolute()
    try:
        if link.is_symlink() and link.resolve() == mounted.resolve():
            return link
        if link.exists() or link.is_symlink():
            return mounted
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(mounted, target_is_directory=True)
    except OSError:
        return mounted
    return link


def _folders(environ: Mapping[str, str], pattern: re.Pattern[str], name: str) -> list[Path | None]:
    found: dict[int, Path] = {}
    targets = _targets(environ)
    for key, value in environ.items():
        match = pattern.match(key)
        if match and value:
            index = int(match.group(1))
            target = targets.get(name.format(index))
            found[index] = _at_target(Path(value), target) if target else Path(value)
    if not found:
        return []
    return [found.get(i) for i in range(max(found) + 1)]


def portal_url_from_environ(run_id: str, environ: Mapping[str, str] | None = None) -> str:
    """The job's studio page, from the workspace variables AzureML sets in a job; empty when they are missing."""
    import os

    env = os.environ if environ is None else environ
    parts = [env.get(k, "").strip() for k in ("AZUREML_ARM_SUBSCRIPTION", "AZUREML_ARM_RESOURCEGROUP",
                                              "AZUREML_ARM_WORKSPACE_NAME")]  # fmt: skip
    if not all(parts):
        return ""
    subscription, group, workspace = parts
    wsid = f"/subscriptions/{subscription}/resourcegroups/{group}/workspaces/{workspace}"
    return f"https://ml.azure.com/runs/{run_id}?wsid={wsid}"


def run_info_from_environ(environ: Mapping[str, str]) -> RunInfo | None:
    """The current AzureML job as a RunInfo, or None outside AzureML."""
    if not is_inside_azureml(environ) or is_other_backends_job(environ):
        return None
    from himl_kernel.runinfo import RunInfo

    run_id = environ.get("MLFLOW_RUN_ID", "").strip() or environ[ENV_RUN_ID].strip()
    parent = environ.get(ENV_PARENT_RUN_ID, "").strip() or environ.get(ENV_ROOT_RUN_ID, "").strip()
    if parent == run_id:
        parent = ""
    outputs, logs = Path("outputs").resolve(), Path("logs").resolve()
    outputs.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    return RunInfo(
        run_id=run_id,
        backend="azureml",
        output_folder=outputs,
        logs_folder=logs,
        input_datasets=_folders(environ, _INPUT, "INPUT_{}"),
        output_datasets=_folders(environ, _OUTPUT, "OUTPUT_{}"),
        parent_run_id=parent,
        is_remote=True,
        tracking_uri=environ.get("MLFLOW_TRACKING_URI", ""),
    )
