"""The ``azureml`` compute backend: a JobSpec becomes an AzureML command or sweep job.

``render`` (``--dry-run``) builds the same azure-ai-ml job object that
``submit`` sends and prints it as YAML; it reads no credential and contacts
nothing. ``submit`` checks the cluster, registers the environment when the
workspace lacks it, makes sure the input data assets exist, submits, prints the
studio URL and, when asked to wait, streams the job's logs and returns its
final status.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

from himl_azure_v2.code_snapshot import StagedSnapshot, announce, stage_snapshot
from himl_azure_v2.environment import (
    PRIVATE_WHEEL_FOLDER,
    EnvironmentDefinition,
    definition_of,
    ensure_registered,
    private_wheel,
    private_wheel_blob,
)
from himl_azure_v2.jobs import AzureSettings, build_azure_job, job_yaml
from himl_kernel.compute_common import DistributionKind
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
    def prepare(self, spec: JobSpec, wheel_url: str = "") -> tuple[Job, StagedSnapshot, EnvironmentDefinition | None]:
        """The azure-ai-ml job for ``spec``, its staged code, and its environment definition.

        The definition is None when the job names a registered environment
        (``aml_environment_name``). ``wheel_url`` is where a private wheel was
        uploaded; without it (a dry run) the wheel's blob name stands in.
        """
        cluster = spec.compute.target
        if not cluster:
            raise HimlError("an AzureML job needs a compute cluster: --cluster NAME (compute_cluster_name in Python)")
        options = spec.compute.options
        named = str(options.get("aml_environment") or "")
        definition: EnvironmentDefinition | None = None
        if named:
            reference = named_environment_reference(named)
        else:
            wheel = options.get("private_wheel")
            extra = [wheel_url or private_wheel_blob(private_wheel(wheel))] if wheel else []
            definition = definition_of(
                spec.environment,
                spec.snapshot.root,
                pip_extra_index_url=str(options.get("pip_extra_index_url") or ""),
                extra_pip_packages=extra,
            )
            reference = definition.reference
        staged = stage_snapshot(spec.snapshot, snapshot_cache())
        distribution = cast("DistributionKind", options.get("distribution", "auto"))
        settings = AzureSettings(
            staged.folder,
            reference,
            cluster,
            distribution,
            mpi_single_node=bool(options.get("mpi_single_node", False)),
            identity_based_auth=bool(options.get("identity_based_auth", False)),
        )
        return build_azure_job(spec, settings), staged, definition

    def render(self, job: JobSpec, host: PluginHost) -> str:
        azure_job, staged, definition = self.prepare(job)
        header = [
            f"# AzureML {azure_job.type} job, as `az ml job create --file` and azure.ai.ml.load_job read it",
            f"# {staged.describe()}",
        ]
        if definition is None:
            named = named_environment_reference(str(job.compute.options["aml_environment"]))
            header.append(f"# environment {named} (registered in the workspace, used as it is)")
        else:
            header.append(
                f"# environment {definition.name} (image {definition.image}"
                + (", with a conda definition" if definition.conda else "")
                + "), registered at submission when the workspace lacks it"
            )
        if job.compute.options.get("private_wheel"):
            header.append(
                f"# private wheel uploaded at submission to the workspace blob store, {PRIVATE_WHEEL_FOLDER}/"
            )
        return "\n".join(header) + "\n" + job_yaml(azure_job)

    # -- submitting ------------------------------------------------------------------
    def workspace_for(self, spec: JobSpec) -> Workspace:
        """The given workspace, else the one ``--workspace-config`` or the search for config.json finds."""
        if self._workspace is None:
            from himl_azure_v2.workspace import Workspace

            self._workspace = Workspace.from_config(spec.compute.options.get("workspace_config"))
        return self._workspace

    def workspace_for_submitted(self) -> Workspace:
        """The workspace the last job was submitted to."""
        if self._workspace is None:
            raise HimlError("no job has been submitted through this backend yet")
        return self._workspace

    def submit(self, job: JobSpec, host: PluginHost) -> Submission:
        self.prepare(job)  # every check that needs no workspace first: nothing is uploaded for a job that fails
        workspace = self.workspace_for(job)
        client = workspace.client
        check_cluster(client, job.compute.target)
        wheel_url = ""
        if job.compute.options.get("private_wheel"):
            wheel_url = upload_private_wheel(workspace, private_wheel(job.compute.options["private_wheel"]))
        azure_job, staged, definition = self.prepare(job, wheel_url)
        announce(staged)
        if definition is None:
            check_named_environment(client, named_environment_reference(str(job.compute.options["aml_environment"])))
        elif ensure_registered(client, definition):
            print(f"himl: registered environment {definition.name}", file=sys.stderr)
        from himl_azure_v2.datasets import ensure_input_assets, register_output_assets

        ensure_input_assets(client, job.input_datasets)
        register_output_assets(client, job.output_datasets)
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


_ENVIRONMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


def named_environment_reference(name: str) -> str:
    """hi-ml's ``aml_environment_name`` as a job's environment: ``NAME`` (its latest version) or ``NAME:VERSION``."""
    text = name.strip()
    if text.startswith("azureml:"):
        text = text[len("azureml:") :]
    base, _, version = text.partition(":")
    if not _ENVIRONMENT_NAME.match(base) or (version and not _ENVIRONMENT_NAME.match(version)):
        raise HimlError(
            f"aml_environment_name {name!r} is not an AzureML environment name: NAME or NAME:VERSION, "
            "made of letters, digits, '_', '-' and '.'"
        )
    return f"azureml:{base}:{version}" if version else f"azureml:{base}@latest"


def check_named_environment(client: MLClient, reference: str) -> None:
    """A one-line error when the registered environment a job names does not exist in the workspace."""
    from azure.core.exceptions import ResourceNotFoundError

    text = reference[len("azureml:") :]
    name, version = (text.split("@")[0], None) if "@" in text else text.split(":", 1)
    try:
        if version is None:
            client.environments.get(name, label="latest")
        else:
            client.environments.get(name, version=version)
    except ResourceNotFoundError:
        raise HimlError(
            f"aml_environment_name: environment {text!r} is not registered in workspace {client.workspace_name!r}"
        ) from None


def upload_private_wheel(workspace: Workspace, wheel: Path) -> str:
    """Upload ``wheel`` to the workspace's blob store (once per content) and return its URL, as hi-ml v1 did."""
    container = workspace.container()
    blob = container.get_blob_client(private_wheel_blob(wheel))
    if not blob.exists():
        with wheel.open("rb") as handle:
            blob.upload_blob(handle, overwrite=True)
        print(f"himl: uploaded private wheel {wheel.name} to {PRIVATE_WHEEL_FOLDER}/", file=sys.stderr)
    return str(blob.url)
