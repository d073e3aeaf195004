"""A JobSpec as an azure-ai-ml job: a ``command`` job, or a ``sweep`` job around one.

This module only builds SDK objects; nothing here talks to Azure, so
``--dry-run`` and the tests see exactly the object that would be submitted.

- The command runs the JobSpec's entry with ``python`` from the job's environment.
- Input dataset ``i`` is job input ``INPUT_i`` (a ``uri_folder`` data asset, mounted
  read-only or downloaded); output dataset ``i`` is job output ``OUTPUT_i`` (a
  folder in its datastore, mounted read-write or uploaded at the end). AzureML
  tells the job where they are through ``AZURE_ML_INPUT_INPUT_i`` and
  ``AZURE_ML_OUTPUT_OUTPUT_i``.
- A sweep's parameters are job inputs with a search space; each trial receives
  its values on the command line as ``--name value``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from himl_azure_v2.credentials import ENV_IDENTITY_BASED_AUTH
from himl_azure_v2.environment import DEFAULT_SHM_SIZE
from himl_azure_v2.workspace import DEFAULT_DATASTORE
from himl_kernel.compute_common import DistributionKind, distributed_launch, himl_tags
from himl_kernel.errors import HimlError
from himl_kernel.runinfo import ENV_BACKEND, ENV_WIRE_FORMAT, WIRE_FORMAT
from himl_kernel.sweep import Uniform

if TYPE_CHECKING:
    from pathlib import Path

    from azure.ai.ml.entities import CommandJob, Job
    from azure.ai.ml.sweep import SweepJob

    from himl_kernel.datasets import DatasetConfig
    from himl_kernel.job import JobSpec

#: The metric a sweep ranks its trials by when the JobSpec names none.
DEFAULT_PRIMARY_METRIC = "val/loss"
INPUT_NAME = "INPUT_{}"
OUTPUT_NAME = "OUTPUT_{}"
#: Tells the job where datasets with a ``target_folder`` should appear (JSON: input/output name -> folder).
ENV_TARGET_FOLDERS = "HIML_TARGET_FOLDERS"


@dataclass(frozen=True)
class AzureSettings:
    """What the AzureML backend needs beyond the JobSpec.

    Attributes:
        code: the staged code folder.
        environment: ``azureml:<name>:<version>`` of the registered environment.
        cluster: the compute cluster's name.
        distribution: ``auto`` picks MPI with one process per node for
            containers (Lightning starts one process per GPU itself) and
            PyTorch with ``processes_per_node`` for scripts.
        mpi_single_node: a one-node, one-process job is an MPI job too
            (hi-ml's ``use_mpi_run_for_single_node_jobs``: Kubernetes compute
            shows GPUs only to distributed jobs).
        identity_based_auth: the job reaches data with the submitting user's
            identity (hi-ml's ``identity_based_auth``: a ``UserIdentityConfiguration``).
    """

    code: Path
    environment: str
    cluster: str
    distribution: DistributionKind = "auto"
    mpi_single_node: bool = False
    identity_based_auth: bool = False


def data_asset_reference(dataset: DatasetConfig) -> str:
    """``azureml:<name>:<version>``, or ``azureml:<name>@latest`` when no version is pinned."""
    if not dataset.name:
        raise HimlError(f"dataset {dataset.label!r} needs a name to be used in an AzureML job")
    if dataset.version is None or str(dataset.version).strip() in ("", "latest"):
        return f"azureml:{dataset.name}@latest"
    return f"azureml:{dataset.name}:{dataset.version}"


def output_path(dataset: DatasetConfig) -> str:
    """The folder of an output dataset: ``<datastore>/<name>/``."""
    if not dataset.name:
        raise HimlError(f"output dataset {dataset.label!r} needs a name to be used in an AzureML job")
    return f"azureml://datastores/{dataset.datastore or DEFAULT_DATASTORE}/paths/{dataset.name}/"


def _inputs_outputs(spec: JobSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    from azure.ai.ml import Input, Output

    inputs: dict[str, Any] = {}
    for index, dataset in enumerate(spec.input_datasets):
        mode = "ro_mount" if dataset.use_mounting else "download"
        inputs[INPUT_NAME.format(index)] = Input(type="uri_folder", path=data_asset_reference(dataset), mode=mode)
    outputs: dict[str, Any] = {}
    for index, dataset in enumerate(spec.output_datasets):
        mode = "rw_mount" if dataset.use_mounting in (None, True) else "upload"
        outputs[OUTPUT_NAME.format(index)] = Output(type="uri_folder", path=output_path(dataset), mode=mode)
    return inputs, outputs


def target_folders(spec: JobSpec) -> dict[str, str]:
    """Job input/output name -> the ``target_folder`` its dataset asks for."""
    wanted = {INPUT_NAME.format(i): d.target_folder for i, d in enumerate(spec.input_datasets)}
    wanted.update({OUTPUT_NAME.format(i): d.target_folder for i, d in enumerate(spec.output_datasets)})
    return {name: str(folder) for name, folder in wanted.items() if folder is not None}


def _distribution(spec: JobSpec, kind: DistributionKind, mpi_single_node: bool = False) -> Any:
    from azure.ai.ml import MpiDistribution, PyTorchDistribution

    launch = distributed_launch(spec, kind, mpi_single_node)
    if launch is None:
        return None
    if launch.kind == "mpi":
        return MpiDistribution(process_count_per_instance=launch.processes_per_node)
    return PyTorchDistribution(process_count_per_instance=launch.processes_per_node)


def _user_identity() -> Any:
    from azure.ai.ml.entities import UserIdentityConfiguration

    return UserIdentityConfiguration()


def command_line(spec: JobSpec) -> str:
    """The command the job runs (without a sweep's trial values)."""
    return shlex.join(spec.entry.command(python="python"))


def tags_of(spec: JobSpec) -> dict[str, str]:
    return himl_tags(spec, "azureml")


def _search_space(name: str, values: Any) -> Any:
    from azure.ai.ml.sweep import Choice, LogUniform
    from azure.ai.ml.sweep import Uniform as AzureUniform

    if isinstance(values, Uniform):
        if values.log:
            import math

            return LogUniform(min_value=math.log(values.low), max_value=math.log(values.high))
        return AzureUniform(min_value=values.low, max_value=values.high)
    return Choice(values=list(values))


def build_azure_job(spec: JobSpec, settings: AzureSettings) -> Job:
    """The azure-ai-ml job for ``spec``: a ``CommandJob``, or a ``SweepJob`` when ``spec`` has a sweep."""
    from azure.ai.ml import command

    inputs, outputs = _inputs_outputs(spec)
    text = command_line(spec)
    sweep = spec.sweep
    if sweep is not None:
        clashes = sorted(set(sweep.parameters) & {n.lower() for n in inputs})
        if clashes:
            raise HimlError(f"sweep parameters {clashes} clash with dataset inputs")
        for name, values in sweep.parameters.items():
            first = values.low if isinstance(values, Uniform) else next(iter(values))
            inputs[name] = first
            text += f" --{name} ${{{{inputs.{name}}}}}"
    timeout = int(spec.max_run_duration_s) if spec.max_run_duration_s else None
    env_vars = {
        **spec.env_vars,
        ENV_WIRE_FORMAT: str(WIRE_FORMAT),  # the job refuses a format it cannot read
        ENV_BACKEND: "azureml",  # inside AzureML, this job is the v2 plugin's (not Amulet's nor the v1 plugin's)
    }
    targets = target_folders(spec)
    if settings.identity_based_auth:
        env_vars[ENV_IDENTITY_BASED_AUTH] = "1"  # inside the job, credentials come from that identity
    if targets:
        import json

        env_vars[ENV_TARGET_FOLDERS] = json.dumps(targets, sort_keys=True)
    node = command(
        command=text,
        code=str(settings.code),
        environment=settings.environment,
        compute=settings.cluster,
        instance_count=spec.compute.num_nodes,
        distribution=_distribution(spec, settings.distribution, settings.mpi_single_node),
        shm_size=spec.environment.shm_size or DEFAULT_SHM_SIZE,
        environment_variables=env_vars or None,
        inputs=inputs or None,
        outputs=outputs or None,
        tags=tags_of(spec),
        experiment_name=spec.experiment,
        display_name=spec.display_name or None,
        timeout=timeout,
        identity=_user_identity() if settings.identity_based_auth else None,
    )
    if sweep is None:
        job: CommandJob = node._to_job()
        return job
    trial = node(**{name: _search_space(name, values) for name, values in sweep.parameters.items()})
    sweep_node = trial.sweep(
        primary_metric=sweep.primary_metric or DEFAULT_PRIMARY_METRIC,
        goal=sweep.goal,
        sampling_algorithm=sweep.sampling,
        compute=settings.cluster,
    )
    sweep_job: SweepJob = sweep_node._to_job()
    sweep_job.set_limits(
        max_total_trials=len(sweep.trials()),
        max_concurrent_trials=sweep.max_parallel,
        timeout=timeout,
    )
    sweep_job.experiment_name = spec.experiment
    sweep_job.display_name = spec.display_name or None
    sweep_job.tags = tags_of(spec)
    return sweep_job


def job_yaml(job: Job) -> str:
    """The job as the YAML ``az ml job create --file`` and ``azure.ai.ml.load_job`` accept."""
    import yaml

    return yaml.safe_dump(plain(job._to_dict()), sort_keys=False)


def plain(data: Any) -> Any:
    """``data`` with the SDK's ordered dicts turned into plain ones (for YAML and comparisons)."""
    import json

    return json.loads(json.dumps(data, default=str))
