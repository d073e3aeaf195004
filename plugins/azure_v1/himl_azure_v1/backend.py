"""The ``azureml-v1`` compute backend: a JobSpec becomes an SDK v1 ScriptRunConfig or HyperDrive run.

``render`` (``--dry-run``) builds the same azureml-core objects a submission
would send and prints their run configuration as YAML: the target, command,
node count, distributed configuration, environment and docker settings, and for
a sweep HyperDrive's sampling, metric and limits. It reads no credential and
contacts nothing.

``submit`` connects to the workspace (see :mod:`himl_azure_v1.workspace`),
checks that the compute target exists, and submits the same objects through
``Experiment.submit``: azureml-core uploads the snapshot, creates the run in
run history and starts it (or hands the sweep to HyperDrive). The run's id is
written to ``most_recent_run.txt`` here, as hi-ml does, and its studio URL is
where to follow it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

import yaml

from himl_azure_v1.runconfig import (
    BACKEND,
    V1Settings,
    build_hyperdrive,
    build_script_run,
    hyperdrive_settings,
    run_configuration,
    tags_of,
)
from himl_kernel.compute_common import write_run_recovery_file

if TYPE_CHECKING:
    from himl_kernel.compute_common import DistributionKind
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
        from himl_kernel.job import Submission

        run = submit_v1(job)
        run_id = str(run.id)
        write_run_recovery_file(run_id)
        url = str(run.get_portal_url())
        print(f"himl: AzureML SDK v1 run {run_id} submitted; follow it at {url}", file=sys.stderr)
        status = str(run.get_status() or "")
        if job.wait_for_completion:
            run.wait_for_completion(show_output=True, raise_on_error=False)
            status = str(run.get_status() or "")
        final = FINAL_STATES.get(status, status.upper())
        failed = final in ("FAILED", "KILLED")
        return Submission(backend=BACKEND, run_id=run_id, url=url, status=final, exit_code=1 if failed else 0)


#: AzureML run statuses as the kernel's.
FINAL_STATES = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED", "Running": "RUNNING"}


def submit_v1(spec: JobSpec, workspace: Any = None) -> Any:
    """Submit ``spec`` through azureml-core; the SDK's ``Run`` (a ``HyperDriveRun`` for a sweep).

    Raises:
        HimlError: no workspace, an unknown compute target, or a JobSpec the backend cannot build.
    """
    from azureml.core import Experiment

    from himl_azure_v1.workspace import check_compute_target, get_workspace

    distribution = cast("DistributionKind", spec.compute.options.get("distribution", "auto"))
    settings = V1Settings(spec.compute.target, distribution)
    run_config = build_script_run(spec, settings)  # a bad JobSpec fails before anything is contacted
    config: Any = build_hyperdrive(spec, run_config) if spec.sweep is not None else run_config
    workspace = workspace if workspace is not None else get_workspace()
    check_compute_target(workspace, settings.cluster)
    experiment = Experiment(workspace, spec.experiment)
    run = experiment.submit(config, tags=tags_of(spec))
    if spec.display_name:
        run.display_name = spec.display_name
    return run
