"""The himl-azure-v2 plugin: AzureML through the SDK v2 (azure-ai-ml).

What it registers (every target is an import path, loaded only when used, so
this module imports nothing from Azure or MLflow):

- compute backend ``azureml`` (also chosen by ``--azureml`` on a script's command line);
- dataset provider ``azureml``: named inputs downloaded from their datastore outside AzureML;
- checkpoint source ``azureml-run``: ``AZUREML_RUN_ID:path``;
- logger ``azureml``: a local run's metrics mirrored to the workspace;
- subcommand ``himl azure upload|download``;
- ``himl runs download`` and ``himl tb`` for AzureML job ids (``himl_locate_run``);
- options ``--distribution`` and ``--workspace-config`` for ``himl run`` and ``himl submit`` (the cluster,
  nodes, environment and the other shared options are the kernel's: it reads them from the JobSpec);
- run detection inside AzureML jobs, and ``himl doctor`` checks.
"""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Mapping
from typing import TYPE_CHECKING

from himl_kernel import hookimpl

if TYPE_CHECKING:
    from himl_kernel.contracts import (
        CheckpointSource,
        Command,
        ComputeBackend,
        DatasetProvider,
        LoggerFactory,
        RunFiles,
    )
    from himl_kernel.doctor import DoctorReport
    from himl_kernel.job import JobSpec
    from himl_kernel.registry import Registry
    from himl_kernel.runinfo import RunInfo

BACKEND = "azureml"
#: The kernel's shared options (``himl_kernel.shared_options``) this backend reads from the JobSpec: all of them.
HONOURED = (
    "cluster",
    "num_nodes",
    "processes_per_node",
    "max_run_duration",
    "no_wait",
    "conda_file",
    "pip_requirements",
    "docker_image",
    "shm_size",
)


@hookimpl
def himl_register_compute_backends(registry: Registry[ComputeBackend]) -> None:
    registry.add(
        BACKEND,
        "himl_azure_v2.backend:AzureMLBackend",
        "AzureML jobs and sweeps through the SDK v2 (azure-ai-ml)",
        script_flag="--azureml",
        honours=HONOURED,
    )


@hookimpl
def himl_detect_run(environ: Mapping[str, str]) -> RunInfo | None:
    from himl_azure_v2.injob import run_info_from_environ

    return run_info_from_environ(environ)


@hookimpl
def himl_locate_run(run_id: str) -> RunFiles | None:
    from himl_azure_v2.checkpoints import locate_job

    return locate_job(run_id)


@hookimpl
def himl_register_dataset_providers(registry: Registry[DatasetProvider]) -> None:
    registry.add(
        BACKEND,
        "himl_azure_v2.datasets:AzureDatasetProvider",
        "named datasets downloaded from their AzureML datastore (outside AzureML; inside, AzureML mounts them)",
        priority=50,
    )


@hookimpl
def himl_register_checkpoint_sources(registry: Registry[CheckpointSource]) -> None:
    registry.add(
        "azureml-run",
        "himl_azure_v2.checkpoints:AzureRunCheckpointSource",
        "AZUREML_RUN_ID:path, a file an AzureML job wrote (downloaded once, MD5-checked)",
        priority=15,
    )


@hookimpl
def himl_register_loggers(registry: Registry[LoggerFactory]) -> None:
    registry.add(
        BACKEND,
        "himl_azure_v2.logger:workspace_sink",
        "outside AzureML: the run's metrics also go to a run in the AzureML workspace",
        default=False,
    )


@hookimpl
def himl_register_commands(registry: Registry[Command]) -> None:
    registry.add("azure", "himl_azure_v2.cli:AzureCommand", "upload to / download from an AzureML datastore")


@hookimpl
def himl_add_options(parser: argparse._ArgumentGroup, command: str) -> None:
    parser.add_argument(
        "--distribution",
        choices=("auto", "mpi", "pytorch", "none"),
        default="auto",
        help="azureml: how a multi-process job starts (auto: MPI for models, PyTorch for scripts)",
    )
    parser.add_argument("--workspace-config", default=None, help="azureml: the workspace's config.json")


@hookimpl
def himl_configure_job(job: JobSpec, options: argparse.Namespace) -> None:
    if job.compute.backend != BACKEND:
        return
    job.compute.options["distribution"] = getattr(options, "distribution", "auto") or "auto"
    config = getattr(options, "workspace_config", None)
    if config:
        job.compute.options["workspace_config"] = str(config)


@hookimpl
def himl_doctor(report: DoctorReport) -> None:
    # What this plugin's metadata requires (azure-ai-ml, azure-identity...), each a row, from metadata only:
    # nothing of Azure is imported to find out.
    report.requirements_of("himl-azure-v2", label="azureml")
    try:
        importlib.metadata.version("azure-ai-ml")
    except importlib.metadata.PackageNotFoundError:
        return  # reported just above; the workspace checks below need the SDK
    from himl_azure_v2.config import find_workspace_config
    from himl_azure_v2.credentials import credential_kind
    from himl_kernel.errors import HimlError

    try:
        config = find_workspace_config()
        report.ok("azureml workspace", f"{config.workspace_name} (from {config.source})")
    except HimlError as exc:
        report.missing("azureml workspace", str(exc), "download config.json from the Azure portal into this folder")
    try:
        report.ok("azure credentials", credential_kind())
    except HimlError as exc:
        report.problem("azure credentials", str(exc), "set all three HIML_SERVICE_PRINCIPAL_* / HIML_TENANT_ID or none")
