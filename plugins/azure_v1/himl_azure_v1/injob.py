"""Recognising a job this plugin submitted, from the variables AzureML sets in SDK v1 runs.

Detection goes by the backend marker first: every job the v1 backend submits
carries ``HIML_BACKEND=azureml-v1``, and only such a job is claimed here. A job
without the marker is left to the SDK v2 plugin, the default AzureML backend,
and an Amulet job (``HIML_BACKEND=amulet``) to the Amulet plugin. Plugins are
asked in order of distribution name (himl-amulet, himl-azure-v1, himl-azure-v2),
so the marker, not the order, decides.

A v1 run sets ``AZUREML_RUN_ID`` (the run's id), ``AZUREML_ARM_SUBSCRIPTION``,
``AZUREML_ARM_RESOURCEGROUP``, ``AZUREML_ARM_WORKSPACE_NAME`` and
``AZUREML_ARM_PROJECT_NAME`` (the experiment), ``AZUREML_RUN_TOKEN`` and
``AZUREML_SERVICE_ENDPOINT``; a child run of HyperDrive also sets
``AZUREML_ROOT_RUN_ID``. The run's outputs and logs folders are ``./outputs``
and ``./logs`` of its working directory, which AzureML uploads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from himl_azure_v1.runconfig import BACKEND
from himl_kernel.runinfo import ENV_BACKEND

if TYPE_CHECKING:
    from himl_kernel.runinfo import RunInfo

ENV_RUN_ID = "AZUREML_RUN_ID"
ENV_ROOT_RUN_ID = "AZUREML_ROOT_RUN_ID"
#: What every SDK v1 run sets besides the run id (the run's workspace and experiment).
V1_VARIABLES = ("AZUREML_ARM_SUBSCRIPTION", "AZUREML_ARM_RESOURCEGROUP", "AZUREML_ARM_WORKSPACE_NAME")


def is_v1_job(environ: Mapping[str, str]) -> bool:
    """True inside an AzureML run that this plugin submitted (by the marker, with AzureML's run id)."""
    return environ.get(ENV_BACKEND, "").strip() == BACKEND and bool(environ.get(ENV_RUN_ID, "").strip())


def run_info_from_environ(environ: Mapping[str, str]) -> RunInfo | None:
    """The current SDK v1 run as a RunInfo, or None when this process is not in one of this plugin's jobs."""
    if not is_v1_job(environ):
        return None
    from himl_kernel.runinfo import RunInfo

    run_id = environ[ENV_RUN_ID].strip()
    root = environ.get(ENV_ROOT_RUN_ID, "").strip()
    outputs, logs = Path("outputs").resolve(), Path("logs").resolve()
    outputs.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    return RunInfo(
        run_id=run_id,
        backend=BACKEND,
        output_folder=outputs,
        logs_folder=logs,
        parent_run_id="" if root == run_id else root,
        is_remote=True,
        tracking_uri=environ.get("MLFLOW_TRACKING_URI", ""),
    )


def workspace_of(environ: Mapping[str, str]) -> dict[str, str]:
    """The run's subscription, resource group and workspace, as the v1 run's variables give them."""
    return {name: environ.get(name, "") for name in V1_VARIABLES}
