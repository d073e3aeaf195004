"""The ``azureml-v1`` compute backend: a JobSpec becomes an SDK v1 ScriptRunConfig or HyperDrive run.

``render`` (``--dry-run``) builds the same azureml-core objects a submission
would send and prints their run configuration as YAML: the target, command,
node count, distributed configuration, environment and docker settings, and for
a sweep HyperDrive's sampling, metric and limits. It reads no credential and
contacts nothing.

Submitting is not built yet: it needs a stand-in for the v1 control plane
(workspace discovery, snapshot, run history and HyperDrive services) to be
tested without Azure, so ``submit`` refuses in one line and points at
``--dry-run`` and at the SDK v2 backend, which submits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import yaml

from himl_azure_v1.runconfig import (
    DistributionKind,
    V1Settings,
    build_hyperdrive,
    build_script_run,
    hyperdrive_settings,
    run_configuration,
    tags_of,
)
from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.job import JobSpec, Submission
    from himl_kernel.plugins import PluginHost


def request_of(spec: JobSpec) -> dict[str, Any]:
    """What a submission of ``spec`` would send, as plain data: run configuration, tags, HyperDrive."""
    distribution = cast("DistributionKind", spec.compute.options.get("distribution", "auto"))
    settings = V1Settings(spec.compute.target, distribution)
    run = build_script_run(spec, settings)
    request: dict[str, Any] = {
        "experiment": spec.experiment,
        "display_name": spec.display_name or None,
        "source_directory": str(spec.snapshot.root),
        "tags": tags_of(spec),
        "run_configuration": run_configuration(run),
    }
    if spec.sweep is not None:
        request["hyperdrive"] = hyperdrive_settings(build_hyperdrive(spec, run))
    return request


class AzureMLV1Backend:
    """Builds SDK v1 runs from JobSpecs (``--compute azureml-v1``, hi-ml's ``--strictly_aml_v1``)."""

    def render(self, job: JobSpec, host: PluginHost) -> str:
        request = request_of(job)
        kind = "HyperDrive run" if "hyperdrive" in request else "ScriptRunConfig run"
        header = f"# AzureML SDK v1 {kind}: the run configuration azureml-core would send\n"
        return header + yaml.safe_dump(request, sort_keys=False)

    def submit(self, job: JobSpec, host: PluginHost) -> Submission:
        request_of(job)  # a bad JobSpec fails here with its own one-line error, as with --dry-run
        raise HimlError(
            "submitting through the AzureML SDK v1 (--compute azureml-v1) is not available yet: "
            "--dry-run prints the run configuration it would send; submit with --compute azureml (SDK v2)"
        )
