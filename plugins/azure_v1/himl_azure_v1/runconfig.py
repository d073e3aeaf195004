"""A JobSpec as SDK v1 objects: a ``ScriptRunConfig``, or a ``HyperDriveConfig`` around one.

This module only builds azureml-core objects; nothing here talks to Azure, so
``--dry-run`` and the tests see the run configuration that would be sent.

- The job runs the JobSpec's entry (a script, a module, or ``himl run --model``)
  as the ScriptRunConfig's command, from the snapshot root.
- The environment comes from a conda file, a pip requirements file or a docker
  image, named ``himl-v1-<hash of its content>`` so that the same definition is
  registered once per workspace and reused.
- Several nodes or processes get a distributed configuration, chosen by the
  kernel's rule (:mod:`himl_kernel.compute_common`, shared with the SDK v2 plugin).
- A sweep (hyperparameters, cross-validation folds, seeds) becomes HyperDrive's
  grid or random sampling, each trial getting its values as ``--name value``.
- Every job carries ``HIML_BACKEND=azureml-v1``, so that inside AzureML only this
  plugin claims it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from himl_kernel.compute_common import DistributionKind, distributed_launch, himl_tags
from himl_kernel.errors import HimlError
from himl_kernel.runinfo import ENV_BACKEND, ENV_WIRE_FORMAT, WIRE_FORMAT
from himl_kernel.sweep import Uniform

if TYPE_CHECKING:
    from azureml.core import Environment as AzureEnvironment
    from azureml.core import ScriptRunConfig
    from azureml.train.hyperdrive import HyperDriveConfig

    from himl_kernel.job import Environment, JobSpec

BACKEND = "azureml-v1"
#: The base image of conda and pip environments when no docker image is given.
DEFAULT_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"
#: The metric a sweep ranks its trials by when the JobSpec names none (as for the v2 plugin and hi-ml).
DEFAULT_PRIMARY_METRIC = "val/loss"
#: AzureML SDK v1's own cap on a run's duration (30 days), used when the JobSpec sets none.
MAX_RUN_DURATION_S = 30 * 24 * 3600


@dataclass(frozen=True)
class V1Settings:
    """What the v1 backend needs beyond the JobSpec.

    Attributes:
        cluster: the compute target's name.
        distribution: ``auto``, ``mpi``, ``pytorch`` or ``none`` (see the module docstring).
    """

    cluster: str
    distribution: DistributionKind = "auto"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _read(path: Path, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise HimlError(f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}") from None


def environment_of(env: Environment, snapshot_root: Path) -> AzureEnvironment:
    """The v1 ``Environment`` a JobSpec asks for, named after its content.

    A conda file wins over pip requirements; a docker image alone runs the job
    with the image's own Python (user-managed dependencies). With none of them,
    ``environment.yml`` in the snapshot root is used.

    Raises:
        HimlError: no environment was given and the snapshot has no ``environment.yml``,
            or a file cannot be read.
    """
    from azureml.core import Environment as AzureEnvironment

    conda_file = env.conda_file
    if conda_file is None and env.pip_requirements is None and not env.docker_image:
        fallback = snapshot_root / "environment.yml"
        conda_file = fallback if fallback.is_file() else None
    image = env.docker_image or DEFAULT_IMAGE
    if conda_file is not None:
        text = _read(Path(conda_file), "conda file")
        name = f"himl-v1-{_digest(image, 'conda', text)}"
        result = AzureEnvironment.from_conda_specification(name, str(conda_file))
    elif env.pip_requirements is not None:
        text = _read(Path(env.pip_requirements), "pip requirements file")
        name = f"himl-v1-{_digest(image, 'pip', text)}"
        result = AzureEnvironment.from_pip_requirements(name, str(env.pip_requirements))
    elif env.docker_image:
        name = f"himl-v1-{_digest(image, 'image')}"
        result = AzureEnvironment(name)
        result.python.user_managed_dependencies = True
    else:
        raise HimlError(
            "an AzureML job needs a software environment: give --conda-file, --pip-requirements or "
            "--docker-image (or put an environment.yml in the snapshot root)"
        )
    result.docker.base_image = image
    return result


def _distribution(spec: JobSpec, kind: DistributionKind) -> Any:
    from azureml.core.runconfig import MpiConfiguration, PyTorchConfiguration

    launch = distributed_launch(spec, kind)
    if launch is None:
        return None
    if launch.kind == "mpi":
        return MpiConfiguration(process_count_per_node=launch.processes_per_node, node_count=launch.nodes)
    return PyTorchConfiguration(process_count=launch.process_count, node_count=launch.nodes)


def tags_of(spec: JobSpec) -> dict[str, str]:
    """The run's tags: the JobSpec's, and what himl needs to recognise the run later."""
    return himl_tags(spec, BACKEND)


def build_script_run(spec: JobSpec, settings: V1Settings) -> ScriptRunConfig:
    """The ``ScriptRunConfig`` that runs ``spec`` once (a sweep's trials add their values to it)."""
    from azureml.core import ScriptRunConfig
    from azureml.core.runconfig import DockerConfiguration

    if not settings.cluster:
        raise HimlError("an AzureML job needs a compute cluster: --cluster NAME (compute_cluster_name in Python)")
    command = spec.entry.command(python="python")
    duration = int(spec.max_run_duration_s) if spec.max_run_duration_s else MAX_RUN_DURATION_S
    config = ScriptRunConfig(
        source_directory=str(spec.snapshot.root),
        command=command,
        compute_target=settings.cluster,
        environment=environment_of(spec.environment, spec.snapshot.root),
        distributed_job_config=_distribution(spec, settings.distribution),
        docker_runtime_config=DockerConfiguration(use_docker=True, shm_size=spec.environment.shm_size or None),
        max_run_duration_seconds=duration,
    )
    config.run_config.node_count = spec.compute.num_nodes
    config.run_config.environment_variables = {
        **spec.env_vars,
        ENV_WIRE_FORMAT: str(WIRE_FORMAT),  # the job refuses a format it cannot read
        ENV_BACKEND: BACKEND,  # inside AzureML, this job is the v1 plugin's
    }
    return config


def _search_space(name: str, values: Any) -> Any:
    from azureml.train.hyperdrive import choice, loguniform, uniform

    if isinstance(values, Uniform):
        if values.log:
            return loguniform(math.log(values.low), math.log(values.high))
        return uniform(values.low, values.high)
    return choice(*list(values))


def build_hyperdrive(spec: JobSpec, run: ScriptRunConfig) -> HyperDriveConfig:
    """The ``HyperDriveConfig`` of ``spec``'s sweep around ``run``.

    Raises:
        HimlError: ``spec`` has no sweep, or a parameter's name is not a plain option name.
    """
    from azureml.train.hyperdrive import (
        GridParameterSampling,
        HyperDriveConfig,
        PrimaryMetricGoal,
        RandomParameterSampling,
    )

    sweep = spec.sweep
    if sweep is None:
        raise HimlError("a HyperDrive run needs a sweep (hyperparameters, cross-validation folds or seeds)")
    space = {}
    for name, values in sweep.parameters.items():
        if not name.replace("_", "").replace("-", "").isalnum():
            raise HimlError(f"sweep parameter {name!r} is not an option name (letters, digits, '_' and '-')")
        space[name] = _search_space(name, values)  # HyperDrive passes it to each trial as --name value
    sampling = GridParameterSampling(space) if sweep.sampling == "grid" else RandomParameterSampling(space)
    goal = PrimaryMetricGoal.MAXIMIZE if sweep.goal == "maximize" else PrimaryMetricGoal.MINIMIZE
    duration_min = math.ceil(spec.max_run_duration_s / 60) if spec.max_run_duration_s else None
    return HyperDriveConfig(
        run_config=run,
        hyperparameter_sampling=sampling,
        primary_metric_name=sweep.primary_metric or DEFAULT_PRIMARY_METRIC,
        primary_metric_goal=goal,
        max_total_runs=len(sweep.trials()),
        max_concurrent_runs=sweep.max_parallel,
        max_duration_minutes=duration_min or 10080,
    )


def run_configuration(run: ScriptRunConfig) -> dict[str, Any]:
    """The run configuration as azureml-core serialises it into the submission request."""
    from azureml._execution._commands import _serialize_run_config_to_dict
    from azureml.core.script_run_config import get_run_config_from_script_run

    serialised: dict[str, Any] = plain(_serialize_run_config_to_dict(get_run_config_from_script_run(run)))
    return serialised


def hyperdrive_settings(config: HyperDriveConfig) -> dict[str, Any]:
    """What a HyperDrive request carries besides the run configuration: sampling, metric and limits."""
    settings: dict[str, Any] = plain(
        {
            "generator_config": config._generator_config,
            "primary_metric_config": config._primary_metric_config,
            "policy_config": config._policy_config,
            "max_total_runs": config._max_total_runs,
            "max_concurrent_runs": config._max_concurrent_runs,
            "max_duration_minutes": config._max_duration_minutes,
        }
    )
    return settings


def plain(data: Any) -> Any:
    """``data`` as plain JSON types (the SDK's ordered dicts and enums included)."""
    return json.loads(json.dumps(data, default=str))
