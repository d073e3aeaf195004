"""himl-azure-v2: AzureML jobs, sweeps, datasets, checkpoints, logging and datastore transfer.

The public functions are imported on first use, so ``import himl_azure_v2``
stays light::

    from himl_azure_v2 import submit_to_azure_if_needed, upload_to_datastore, download_from_datastore
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from himl_azure_v2.himl_compat import (
        AzureRunInfo,
        aggregate_hyperdrive_metrics,
        create_aml_run_object,
        download_from_datastore,
        get_workspace,
        submit_to_azure_if_needed,
        upload_to_datastore,
    )
    from himl_azure_v2.run_files import (
        download_checkpoints_from_run_id,
        download_files_from_run_id,
        is_running_in_azure_ml,
    )
    from himl_kernel.datasets import DatasetConfig

__all__ = [
    "RUN_CONTEXT",
    "AzureRunInfo",
    "DatasetConfig",
    "aggregate_hyperdrive_metrics",
    "create_aml_run_object",
    "download_checkpoints_from_run_id",
    "download_files_from_run_id",
    "download_from_datastore",
    "get_workspace",
    "is_running_in_azure_ml",
    "submit_to_azure_if_needed",
    "upload_to_datastore",
]

_WHERE = {
    "DatasetConfig": "himl_kernel.datasets",
    "download_checkpoints_from_run_id": "himl_azure_v2.run_files",
    "download_files_from_run_id": "himl_azure_v2.run_files",
    "is_running_in_azure_ml": "himl_azure_v2.run_files",
    "AzureRunInfo": "himl_azure_v2.himl_compat",
    "aggregate_hyperdrive_metrics": "himl_azure_v2.himl_compat",
    "create_aml_run_object": "himl_azure_v2.himl_compat",
    "get_workspace": "himl_azure_v2.himl_compat",
    "submit_to_azure_if_needed": "himl_azure_v2.himl_compat",
    "download_from_datastore": "himl_azure_v2.himl_compat",
    "upload_to_datastore": "himl_azure_v2.himl_compat",
}


def __getattr__(name: str) -> Any:
    if name == "RUN_CONTEXT":
        from himl_azure_v2.himl_compat import run_context

        return run_context()
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'himl_azure_v2' has no attribute {name!r}")
