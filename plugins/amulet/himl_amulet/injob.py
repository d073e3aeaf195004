"""Recognising an Amulet job from its environment, and what it knows about itself.

A job himl submitted carries ``HIML_BACKEND=amulet`` (``submit_args.env``); a job
whose marker names another backend is never claimed. A hand-written Amulet job
is recognised by Amulet's own variables: ``AMLT_OUTPUT_DIR`` or
``AZUREML_ARM_PROJECT_NAME``, together with the code folder AzureML gives it
(``SNAPSHOT_DIR`` for one node, ``AZ_BATCHAI_JOB_WORK_DIR`` for several).

Where things are (the places hi-ml's Amulet example uses):

- outputs: ``$AMLT_OUTPUT_DIR`` (what ``amlt results`` downloads), logs in its
  ``logs`` folder; without it, ``outputs`` and ``logs`` in the code folder;
- datasets: folders of the container mounted as storage ``data``
  (``$AZUREML_DATAREFERENCE_data``, else the mount folder the submission named);
- metrics: the job's MLflow run (``MLFLOW_TRACKING_URI``, ``MLFLOW_RUN_ID``, as AzureML sets them).

A Lightning job also loses ``RANK``: Amulet sets it, and Lightning would take
every process for rank zero (hi-ml's ``prepare_amulet_job`` does the same). The
command himl writes drops it (``env -u RANK``); detection also removes it from
an environment mapping it may change (the plugin host hands it a read-only view).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING

from himl_amulet.config import BACKEND, ENV_INPUTS, ENV_LIGHTNING, ENV_MOUNT_DIR, ENV_OUTPUTS
from himl_kernel.errors import HimlError
from himl_kernel.runinfo import ENV_BACKEND

if TYPE_CHECKING:
    from himl_kernel.runinfo import RunInfo

ENV_PROJECT_NAME = "AZUREML_ARM_PROJECT_NAME"
ENV_OUTPUT_DIR = "AMLT_OUTPUT_DIR"
ENV_SNAPSHOT_DIR = "SNAPSHOT_DIR"
ENV_BATCHAI_DIR = "AZ_BATCHAI_JOB_WORK_DIR"
ENV_DATA_REFERENCE = "AZUREML_DATAREFERENCE_data"
ENV_RANK = "RANK"


def _get(environ: Mapping[str, str], key: str) -> str:
    return environ.get(key, "").strip()


def working_dir(environ: Mapping[str, str]) -> Path | None:
    """The folder AzureML put the code in: ``SNAPSHOT_DIR`` (one node), else ``AZ_BATCHAI_JOB_WORK_DIR``."""
    found = _get(environ, ENV_SNAPSHOT_DIR) or _get(environ, ENV_BATCHAI_DIR)
    return Path(found) if found else None


def is_amulet_job(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` is an Amulet job's: the backend marker says so, or (no marker) Amulet's variables do."""
    marker = _get(environ, ENV_BACKEND)
    if marker:
        return marker == BACKEND
    amulet = bool(_get(environ, ENV_OUTPUT_DIR) or _get(environ, ENV_PROJECT_NAME))
    return amulet and working_dir(environ) is not None


def _names(environ: Mapping[str, str], key: str) -> list[str]:
    raw = _get(environ, key)
    if not raw:
        return []
    try:
        names = json.loads(raw)
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise HimlError(f"{key}={raw!r} is not a JSON list of dataset names, as himl's Amulet submission writes")
    return names


def data_dir(environ: Mapping[str, str]) -> Path | None:
    """Where the datasets' container is mounted, or None when the job has no data mount."""
    found = _get(environ, ENV_DATA_REFERENCE) or _get(environ, ENV_MOUNT_DIR)
    return Path(found) if found else None


def _dataset_folders(environ: Mapping[str, str], key: str) -> list[Path | None]:
    names = _names(environ, key)
    mount = data_dir(environ)
    if names and mount is None:
        raise HimlError(f"this Amulet job names datasets ({key}) but has no data mount ({ENV_DATA_REFERENCE})")
    return [mount / name if mount is not None else None for name in names]


def prepare_job(environ: Mapping[str, str]) -> None:
    """Remove ``RANK`` from a Lightning job's environment (a plain script started per process keeps it)."""
    if _get(environ, ENV_LIGHTNING) == "1" and isinstance(environ, MutableMapping):
        environ.pop(ENV_RANK, None)


def run_info_from_environ(environ: Mapping[str, str]) -> RunInfo | None:
    """The current Amulet job as a RunInfo, or None when this is not one."""
    if not is_amulet_job(environ):
        return None
    from himl_kernel.runinfo import RunInfo, check_wire_format

    check_wire_format(environ)
    code = working_dir(environ) or Path.cwd()
    amlt_output = _get(environ, ENV_OUTPUT_DIR)
    outputs = Path(amlt_output) if amlt_output else code / "outputs"
    logs = outputs / "logs" if amlt_output else code / "logs"
    for folder in (outputs, logs):
        folder.mkdir(parents=True, exist_ok=True)
    run_id = (
        _get(environ, "MLFLOW_RUN_ID")
        or _get(environ, "AZUREML_RUN_ID")
        or _get(environ, "AMLT_JOB_NAME")
        or _get(environ, ENV_PROJECT_NAME)
        or "amulet-job"
    )
    parent = _get(environ, "AZUREML_ROOT_RUN_ID")
    info = RunInfo(
        run_id=run_id,
        backend=BACKEND,
        output_folder=outputs,
        logs_folder=logs,
        input_datasets=_dataset_folders(environ, ENV_INPUTS),
        output_datasets=_dataset_folders(environ, ENV_OUTPUTS),
        parent_run_id="" if parent == run_id else parent,
        is_remote=True,
        tracking_uri=_get(environ, "MLFLOW_TRACKING_URI"),
    )
    prepare_job(environ)
    return info
