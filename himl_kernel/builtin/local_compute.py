"""Built-in compute backend ``local``: runs jobs on this machine."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING

from himl_kernel import hookimpl

if TYPE_CHECKING:
    from himl_kernel.contracts import ComputeBackend
    from himl_kernel.job import JobSpec
    from himl_kernel.registry import Registry
    from himl_kernel.runinfo import RunInfo


@hookimpl
def himl_register_compute_backends(registry: Registry[ComputeBackend]) -> None:
    registry.add(
        "local",
        "himl_kernel.backends.local:LocalBackend",
        "run here, each run with its own outputs and logs in the local MLflow store",
        honours=("max_run_duration",),  # the other shared options mean nothing here: refused if set
    )


@hookimpl
def himl_detect_run(environ: Mapping[str, str]) -> RunInfo | None:
    if environ.get("HIML_BACKEND", "") != "local":
        return None
    from himl_kernel.runinfo import RunInfo

    return RunInfo.from_environ(environ)


@hookimpl
def himl_add_options(parser: argparse._ArgumentGroup, command: str) -> None:
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="local backend: start a new run even when the same job was interrupted (default: carry on with it)",
    )


@hookimpl
def himl_configure_job(job: JobSpec, options: argparse.Namespace) -> None:
    if job.compute.backend == "local":
        job.compute.options["resume"] = not getattr(options, "no_resume", False)
