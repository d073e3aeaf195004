"""The himl-amulet plugin: jobs submitted to Singularity through Amulet configurations.

What it registers (targets are import paths, loaded only when used; this module
imports nothing beyond the kernel):

- compute backend ``amulet``: ``amlt.yaml`` written from the JobSpec and run with ``amlt run``;
- options ``--amulet-target``, ``--amulet-service``, ``--amulet-workspace``, ``--amulet-sku``,
  ``--amulet-gpus``, ``--amulet-memory``, ``--amulet-sla-tier``, ``--amulet-priority``,
  ``--amulet-preemptible``, ``--amulet-storage-account``, ``--amulet-container`` and
  ``--amulet-mount-dir`` (nodes, processes, environment and image are the kernel's shared options);
- subcommand ``himl amulet status|logs|results``, passed through to ``amlt``;
- run detection inside Amulet jobs (before the AzureML plugins: Amulet jobs run on AzureML),
  and ``himl doctor`` checks.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from himl_kernel import hookimpl

if TYPE_CHECKING:
    from himl_kernel.contracts import Command, ComputeBackend
    from himl_kernel.doctor import DoctorReport
    from himl_kernel.job import JobSpec
    from himl_kernel.registry import Registry
    from himl_kernel.runinfo import RunInfo

BACKEND = "amulet"
#: The target used when ``--amulet-target`` is not given.
ENV_TARGET = "HIML_AMULET_TARGET"
#: The kernel's shared options this backend reads from the JobSpec. Amulet has no run-duration or
#: shared-memory setting in what this plugin writes, so --max-run-duration and --shm-size are refused;
#: ``amlt run`` returns once the job is queued, which is what --no-wait asks for.
HONOURED = ("cluster", "num_nodes", "processes_per_node", "no_wait", "conda_file", "pip_requirements", "docker_image")
#: Option destination -> the key in ``job.compute.options`` (see ``himl_amulet.config.AmuletSettings``).
_SETTINGS = {
    "amulet_target": "target",
    "amulet_service": "service",
    "amulet_workspace": "workspace",
    "amulet_sku": "sku",
    "amulet_gpus": "gpus",
    "amulet_memory": "memory_gb",
    "amulet_sla_tier": "sla_tier",
    "amulet_priority": "priority",
    "amulet_preemptible": "preemptible",
    "amulet_storage_account": "storage_account",
    "amulet_container": "container",
    "amulet_mount_dir": "mount_dir",
}


@hookimpl
def himl_register_compute_backends(registry: Registry[ComputeBackend]) -> None:
    registry.add(
        BACKEND,
        "himl_amulet.backend:AmuletBackend",
        "Singularity jobs through Amulet: writes amlt.yaml and runs amlt run",
        honours=HONOURED,
    )


@hookimpl
def himl_detect_run(environ: Mapping[str, str]) -> RunInfo | None:
    from himl_amulet.injob import run_info_from_environ

    return run_info_from_environ(environ)


@hookimpl
def himl_register_commands(registry: Registry[Command]) -> None:
    registry.add("amulet", "himl_amulet.cli:AmuletCommand", "Amulet jobs: status, logs and results (through amlt)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


@hookimpl
def himl_add_options(parser: argparse._ArgumentGroup, command: str) -> None:
    add = parser.add_argument
    add(
        "--amulet-target",
        default=None,
        metavar="NAME",
        help=f"amulet: the target (virtual cluster) to run on (default: ${ENV_TARGET})",
    )
    add("--amulet-service", choices=("sing", "aml"), default="sing", help="amulet: the target's service")
    add("--amulet-workspace", default="", metavar="NAME", help="amulet: the target's workspace (default: amlt's)")
    add("--amulet-sku", default="", metavar="SKU", help="amulet: the sku (G1, C4, 2xG8...); default from nodes/GPUs")
    add("--amulet-gpus", type=_positive, default=None, metavar="N", help="amulet: GPUs per node (default: processes)")
    add("--amulet-memory", type=_positive, default=32, metavar="GB", help="amulet: MEM of a multi-node sku")
    add("--amulet-sla-tier", choices=("basic", "standard", "premium"), default="", help="amulet: the SLA tier")
    add("--amulet-priority", choices=("low", "medium", "high"), default="", help="amulet: the job priority")
    add(
        "--amulet-preemptible",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="amulet: whether the job may be preempted (default: Amulet's)",
    )
    add("--amulet-storage-account", default="", metavar="NAME", help="amulet: storage account of the datasets")
    add("--amulet-container", default="datasets", metavar="NAME", help="amulet: blob container of the datasets")
    add("--amulet-mount-dir", default="/mnt/data", metavar="DIR", help="amulet: where the container is mounted")


@hookimpl
def himl_configure_job(job: JobSpec, options: argparse.Namespace) -> None:
    if job.compute.backend != BACKEND:
        return
    for dest, key in _SETTINGS.items():
        if hasattr(options, dest):
            job.compute.options[key] = getattr(options, dest)
    if not job.compute.options.get("target") and not job.compute.target:
        job.compute.options["target"] = os.environ.get(ENV_TARGET, "").strip()


@hookimpl
def himl_doctor(report: DoctorReport) -> None:
    from himl_amulet.amlt import INSTALL_HINT, find_amlt
    from himl_kernel.errors import HimlError

    try:
        amlt = find_amlt()
    except HimlError as exc:
        report.problem("amulet: amlt", str(exc), INSTALL_HINT)
        return
    if amlt is None:
        report.missing("amulet: amlt", "not on PATH: himl run --compute amulet only writes amlt.yaml", INSTALL_HINT)
        return
    report.ok("amulet: amlt", f"{amlt.version} ({amlt.path})")
    target = os.environ.get(ENV_TARGET, "").strip()
    if target:
        report.ok("amulet: target", f"{target} (from {ENV_TARGET})")
    else:
        report.missing(
            "amulet: target",
            f"no default target: {ENV_TARGET} is not set",
            f"pass --amulet-target NAME, or set {ENV_TARGET}; register the workspace with "
            "amlt workspace add WORKSPACE --subscription ID --resource-group GROUP",
        )
