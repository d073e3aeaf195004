"""The himl-azure-v1 plugin: AzureML through the SDK v1 (azureml-core).

What it registers (targets are import paths, loaded only when used; this module
imports nothing from Azure):

- compute backend ``azureml-v1`` (hi-ml's ``strictly_aml_v1``): a JobSpec becomes a
  ``ScriptRunConfig``, and a sweep a ``HyperDriveConfig`` around it; ``--dry-run``
  prints the run configuration azureml-core would send;
- no options of its own: the cluster, nodes, environment and the other shared options are
  the kernel's (the distributed configuration is chosen as the SDK v2 plugin's ``auto`` does);
- a default logger that, inside a v1 job only, writes the kernel's metrics to the job's v1 Run;
- run detection inside the jobs it submitted (``HIML_BACKEND=azureml-v1``), and
  ``himl doctor`` rows.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from typing import TYPE_CHECKING

from himl_kernel import hookimpl

if TYPE_CHECKING:
    from himl_kernel.contracts import ComputeBackend, LoggerFactory
    from himl_kernel.doctor import DoctorReport
    from himl_kernel.registry import Registry
    from himl_kernel.runinfo import RunInfo

BACKEND = "azureml-v1"
#: The kernel's shared options this backend reads from the JobSpec.
HONOURED = (
    "no_wait",
    "cluster",
    "num_nodes",
    "processes_per_node",
    "max_run_duration",
    "conda_file",
    "pip_requirements",
    "docker_image",
    "shm_size",
)


@hookimpl
def himl_register_compute_backends(registry: Registry[ComputeBackend]) -> None:
    registry.add(
        BACKEND,
        "himl_azure_v1.backend:AzureMLV1Backend",
        "AzureML runs and HyperDrive sweeps through the SDK v1 (azureml-core)",
        honours=HONOURED,
    )


@hookimpl
def himl_register_loggers(registry: Registry[LoggerFactory]) -> None:
    registry.add(
        BACKEND,
        "himl_azure_v1.run_sink:v1_run_sink",
        "inside an SDK v1 job: metrics and parameters go to the job's v1 Run",
        default=True,
    )


@hookimpl
def himl_detect_run(environ: Mapping[str, str]) -> RunInfo | None:
    from himl_azure_v1.injob import run_info_from_environ

    return run_info_from_environ(environ)


@hookimpl
def himl_doctor(report: DoctorReport) -> None:
    for distribution in ("azureml-core", "azureml-train-core", "azureml-dataset-runtime"):
        try:
            report.ok(f"azure-v1: {distribution}", importlib.metadata.version(distribution))
        except importlib.metadata.PackageNotFoundError:
            report.missing(
                f"azure-v1: {distribution}",
                "not installed: the SDK v1 backend cannot build runs",
                'pip install "himl[azure-v1]" (one resolve with the rest: see constraints.txt)',
            )
