"""The ``azureml`` compute backend: a JobSpec becomes an AzureML command or sweep job.

``render`` (``--dry-run``) builds the same azure-ai-ml job object that
``submit`` sends and prints it as YAML; it reads no credential and contacts
nothing. ``submit`` checks the cluster, registers the environment when the
workspace lacks it, makes sure the input data assets exist, submits, prints the
studio URL and, when asked to wait, streams the job's logs and returns its
final status.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from himl_azure_v2.code_snapshot import StagedSnapshot, announce, stage_snapshot
from himl_azure_v2.environment import definition_of, ensure_registered
from himl_azure_v2.jobs import AzureSettings, DistributionKind, build_azure_job, job_yaml
from himl_kernel.errors import HimlError
from himl_kernel.job import Submission

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import Job

    from himl_azure_v2.workspace import Workspace
    from himl_kernel.job import JobSpec
    from himl_kernel.plugins import PluginHost

BACKEND = "azureml"
#: AzureML job states that end a job, and what himl calls them.
FINAL_STATES = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED", "NotResponding": "FAILED"}


def snapshot_cache() -> Path:
    from himl_kernel.dataset_prep import cache_dir

    return cache_dir() / "azureml-snapshots"


class AzureMLBackend:
    """Submits JobSpecs to an AzureML workspace.

    Args:
        workspace: the workspace to submit to; by default the one a
            ``config.json`` or the ``HIML_*`` variables name, found at submission.
    """

    def __init__(self, workspace: Workspace | None = None) -> None:
        self._workspace = workspace

    # -- building --------------------------------------------------------------------
    def prepare(self, spec: JobSpec) -> tuple[Job, StagedSnapshot, Any]:
        """The azure-ai-ml job for ``spec``, its staged code, and its environment definition."""
        cluster = spec.compute.target
        if not cluster:
            raise HimlError("an AzureML job needs a compute cluster: --cluster NAME (compute_cluster_name in Python)")
        definition = definition_of(spec.environment, spec.snapshot.root)
        staged = stage_snapshot(spec.snapshot, snapshot_cache())
        distribution = cast("DistributionKind", spec.compute.options.get("distribution", "auto"))
        settings = AzureSettings(staged.folder, definition.reference, cluster, distribution)
        return build_azure_job(spec, settings), staged, definition

    def render(self, job: JobSpec, host: PluginHost) -> str:
        azure_job, staged, definition = self.prepare(job)
        header = [
            f"# AzureML {azure_job.type} job, as `az ml job create --file` and azure.ai.ml.load_job read it",
            f"# {staged.describe()}",
            f"# environment {definition.name} (image {definition.image}"
            + (", with a conda definition" if definition.conda else "")
            + "), registered at submission when the workspace lacks it",
        ]
        return "\n".join(header) + "\n" + job_yaml(azure_job)

    # -- submitting ------------------------------------------------------------------
    def workspace_for(self, spec: JobSpec) -> Workspace:
        """The given workspace, else the one ``--workspace-config`` or the search for config.json finds."""
        if self._workspace is None:
            from himl_azure_v2.workspace import Workspace

            self._workspace = Workspace.from_config(spec.compute.options.get("workspace_config"))
        return self._workspace

    def submit(self, job: JobSpec, host: PluginHost) -> Submission:
        azure_job, staged, definition = self.prepare(job)
        announce(staged)
        workspace = self.workspace_for(job)
        client = workspace.client
        check_cluster(client, job.compute.target)
        if ensure_registered(client, definition):
            print(f"himl: registered environment {definition.name}", file=sys.stderr)
        from himl_azure_v2.datasets import ensure_input_assets

        ensure_input_assets(client, job.input_datasets)
        created = client.jobs.create_or_update(azure_job)
        name = str(created.name)
        url = str(getattr(created, "studio_url", "") or workspace.studio_url(name))
        status = status_text(created.status)
        if job.wait_for_completion:
            from azure.ai.ml.exceptions import JobException

            try:
                client.jobs.stream(name)
            except JobException:  # the SDK's way of saying the job failed: its status below says so too
                print(f"himl: AzureML job {name} did not complete; see {url}", file=sys.stderr)
            status = status_text(client.jobs.get(name).status)
        final = FINAL_STATES.get(status, status)
        failed = final in ("FAILED", "KILLED")
        return Submission(backend=BACKEND, run_id=name, url=url, status=final, exit_code=1 if failed else 0)


def status_text(status: object) -> str:
    """An AzureML job status as text (the SDK may give an enum member)."""
    return str(getattr(status, "value", status) or "")


def check_cluster(client: MLClient, cluster: str) -> None:
    """A one-line error naming the workspace's clusters when ``cluster`` is not one of them."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        client.compute.get(cluster)
    except ResourceNotFoundError:
        known = sorted(str(c.name) for c in client.compute.list())
        raise HimlError(
            f"unknown compute cluster {cluster!r} in workspace {client.workspace_name!r}; "
            f"known: {', '.join(known) if known else '(none)'}"
        ) from None
