"""himl-azure-v1: AzureML through the SDK v1 (azureml-core), for workspaces and scripts that use it.

``himl run --compute azureml-v1 --cluster NAME ... --dry-run`` prints the
``ScriptRunConfig`` (or, for a sweep, the ``HyperDriveConfig``) run configuration
that azureml-core would send. hi-ml's ``RUN_CONTEXT`` (the v1 ``Run`` of the
current job, or an offline run outside AzureML) and ``create_crossval_hyperdrive_config``
and ``aggregate_hyperdrive_metrics`` are here under hi-ml's names. The entry module, :mod:`himl_azure_v1.plugin`,
imports nothing beyond the kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from himl_azure_v1.aggregate import aggregate_hyperdrive_metrics
    from himl_azure_v1.hyperdrive import create_crossval_hyperdrive_config

__all__ = ["RUN_CONTEXT", "aggregate_hyperdrive_metrics", "create_crossval_hyperdrive_config"]


def __getattr__(name: str) -> Any:
    # imported on first use, so that importing the package does not import azureml-core
    if name == "RUN_CONTEXT":
        # hi-ml's RUN_CONTEXT: the v1 Run of this job inside AzureML, an offline run (logging to the console)
        # elsewhere; made once, on first use
        from azureml.core import Run

        context = Run.get_context()
        globals()["RUN_CONTEXT"] = context
        return context
    if name == "create_crossval_hyperdrive_config":
        from himl_azure_v1.hyperdrive import create_crossval_hyperdrive_config

        return create_crossval_hyperdrive_config
    if name == "aggregate_hyperdrive_metrics":
        from himl_azure_v1.aggregate import aggregate_hyperdrive_metrics

        return aggregate_hyperdrive_metrics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
