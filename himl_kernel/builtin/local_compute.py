"""Built-in compute backend ``local``: runs jobs on this machine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from himl_kernel import hookimpl

if TYPE_CHECKING:
    from himl_kernel.contracts import ComputeBackend
    from himl_kernel.registry import Registry
    from himl_kernel.runinfo import RunInfo


@hookimpl
def himl_register_compute_backends(registry: Registry[ComputeBackend]) -> None:
    registry.add(
        "local",
        "himl_kernel.backends.local:LocalBackend",
        "run here, each run with its own outputs and logs in the local MLflow store",
    )


@hookimpl
def himl_detect_run(environ: Mapping[str, str]) -> RunInfo | None:
    if environ.get("HIML_BACKEND", "") != "local":
        return None
    from himl_kernel.runinfo import RunInfo

    return RunInfo.from_environ(environ)
