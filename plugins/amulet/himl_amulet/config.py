"""A JobSpec as an Amulet configuration (the document ``amlt run`` reads).

The configuration is written at the snapshot root as ``amlt.yaml``, so
``code.local_dir`` is ``$CONFIG_DIR`` (Amulet expands it to the folder of the
file) and a conda file or pip requirements file inside the snapshot is named
relative to it.

- The image is the JobSpec's docker image (a CUDA image with MPI by default),
  with the conda file as ``conda_yaml_file`` and pip requirements installed by a
  ``setup`` command. A base image has no himl: a ``setup`` command installs it
  (``himl_setup``), unless one of those files names it.
- One node: sku ``G<gpus>`` (``C<cpus>`` for a CPU job). Several nodes:
  ``${NODES}x${MEM}G${GPUS}`` with ``env_defaults`` holding the three numbers,
  as hi-ml's manual recommends.
- A model (a Lightning container) gets ``process_count_per_node: 0``: Amulet
  starts it once per node and Lightning starts one process per GPU. Its
  command starts with ``env -u RANK``: Amulet's RANK would make Lightning take
  every process for rank zero. A script
  with several processes per node gets that number.
- Input and output datasets are folders of one blob container, mounted into the
  job at ``mount_dir`` (``storage.data``); dataset ``NAME`` is ``mount_dir/NAME``.
- A grid sweep over plain values (cross-validation folds, seeds, a grid of
  hyperparameters) becomes the ``search`` section; a random sweep, or one over
  ranges or list values, becomes one job per trial.
- Every job carries ``HIML_BACKEND=amulet`` in ``submit_args.env``, so that
  inside AzureML only this plugin claims it.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from himl_amulet.schema import AmuletConfig, validate_config
from himl_kernel.errors import HimlError
from himl_kernel.runinfo import ENV_BACKEND, ENV_WIRE_FORMAT, WIRE_FORMAT
from himl_kernel.sweep import Uniform, format_cli_value, trial_arguments

if TYPE_CHECKING:
    from himl_kernel.job import JobSpec
    from himl_kernel.sweep import Sweep

BACKEND = "amulet"
CONFIG_NAME = "amlt.yaml"
DEFAULT_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04:latest"
#: Images known not to contain himl: AzureML's base images (the default one among them).
BASE_IMAGE_PREFIXES = ("mcr.microsoft.com/azureml/", "azureml/")
DEFAULT_MOUNT_DIR = "/mnt/data"
DEFAULT_CONTAINER = "datasets"
DEFAULT_MEMORY_GB = 32
#: The names of the input / output datasets (JSON lists), the mount folder, and whether Lightning runs the job.
ENV_INPUTS = "HIML_AMULET_INPUTS"
ENV_OUTPUTS = "HIML_AMULET_OUTPUTS"
ENV_MOUNT_DIR = "HIML_AMULET_MOUNT_DIR"
ENV_LIGHTNING = "HIML_AMULET_LIGHTNING"
#: The storage entry the datasets' container is mounted as (Amulet tells the job in AZUREML_DATAREFERENCE_data).
DATA_STORAGE = "data"


@dataclass(frozen=True)
class AmuletSettings:
    """What the Amulet backend needs beyond the shared options (from ``--amulet-*``).

    Attributes:
        target: the Amulet target (a Singularity virtual cluster) jobs run on.
        service: Amulet's service for the target: ``sing`` (Singularity) or ``aml``.
        workspace: the target's workspace; empty: Amulet's default.
        sku: a sku of your own (``G8``, ``C4``, ``2xG8``); empty: derived from nodes and processes.
        gpus: GPUs per node; ``None``: processes per node.
        memory_gb: GPU memory per device in a multi-node sku (the ``MEM`` of ``${NODES}x${MEM}G${GPUS}``).
        sla_tier: ``basic``, ``standard`` or ``premium``; empty: Amulet's default.
        priority: ``low``, ``medium`` or ``high``; empty: Amulet's default.
        preemptible: whether the job may be preempted; ``None``: Amulet's default.
        storage_account: the storage account that holds the datasets' container.
        container: the blob container holding the datasets.
        mount_dir: where the container is mounted inside the job.
    """

    target: str = ""
    service: str = "sing"
    workspace: str = ""
    sku: str = ""
    gpus: int | None = None
    memory_gb: int = DEFAULT_MEMORY_GB
    sla_tier: str = ""
    priority: str = ""
    preemptible: bool | None = None
    storage_account: str = ""
    container: str = DEFAULT_CONTAINER
    mount_dir: str = DEFAULT_MOUNT_DIR

    @classmethod
    def of(cls, job: JobSpec) -> AmuletSettings:
        """The settings ``himl_configure_job`` left in ``job.compute.options``, the target from ``--cluster`` too."""
        options = dict(job.compute.options)
        known = {name for name in cls.__dataclass_fields__}
        unknown = sorted(set(options) - known)
        if unknown:
            raise HimlError(f"amulet: unknown job option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        target = str(options.pop("target", "") or "")
        cluster = job.compute.target
        if target and cluster and target != cluster:
            raise HimlError(f"--amulet-target {target!r} and --cluster {cluster!r} disagree: give one of them")
        return cls(target=target or cluster, **options)


def snapshot_relative(path: Path, root: Path, what: str) -> str:
    """``$CONFIG_DIR/<path relative to root>``: a file the job receives with the code."""
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        raise HimlError(
            f"{what} {str(path)!r} is outside the snapshot root {str(root)!r}; Amulet uploads only that folder: "
            "move the file into it"
        ) from None
    return relative.as_posix()


def job_name(job: JobSpec) -> str:
    """A name for the job: its display name, else its model or script name, in Amulet's characters."""
    raw = job.display_name or Path(job.entry.target).stem or job.entry.target
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).strip("-.")
    return name or "himl-job"


def _sku(job: JobSpec, settings: AmuletSettings) -> tuple[str, dict[str, int] | None]:
    if settings.sku:
        return settings.sku, None
    gpus = settings.gpus if settings.gpus is not None else job.compute.processes_per_node
    nodes = job.compute.num_nodes
    if gpus < 0:
        raise HimlError(f"--amulet-gpus must be 0 (a CPU job) or more, got {gpus}")
    if nodes == 1:
        return (f"G{gpus}" if gpus else "C1"), None
    if gpus == 0:
        return f"{nodes}xC1", None
    return "${NODES}x${MEM}G${GPUS}", {"NODES": nodes, "GPUS": gpus, "MEM": settings.memory_gb}


def _process_count(job: JobSpec, env_defaults: dict[str, int] | None) -> int | str | None:
    if job.entry.kind == "container":
        return 0  # Lightning starts one process per GPU itself
    if job.compute.processes_per_node > 1:
        return (
            "${GPUS}"
            if env_defaults and env_defaults.get("GPUS") == job.compute.processes_per_node
            else (job.compute.processes_per_node)
        )
    return None


def _names_himl(path: Path | None) -> bool:
    """Whether a conda or pip requirements file asks for himl (a line naming the ``himl`` distribution)."""
    if path is None:
        return False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return re.search(r"^[\s-]*himl(\b(?!-)|\[)", text, flags=re.MULTILINE) is not None


def himl_setup(job: JobSpec) -> str | None:
    """The setup command that installs himl in the job, when its image is a base image without himl.

    Only the AzureML base images are known not to hold himl (the default one among them); an image of
    your own is taken to have it. A conda or pip requirements file that names himl installs it already.
    """
    image = job.environment.docker_image or DEFAULT_IMAGE
    if not image.startswith(BASE_IMAGE_PREFIXES):
        return None
    if _names_himl(job.environment.conda_file) or _names_himl(job.environment.pip_requirements):
        return None
    from himl_kernel import __version__

    return f"pip install {shlex.quote(f'himl[amulet]=={__version__}')}"


def _environment(job: JobSpec) -> dict[str, Any]:
    root = job.snapshot.root
    env: dict[str, Any] = {"image": job.environment.docker_image or DEFAULT_IMAGE}
    setup: list[str] = []
    if job.environment.conda_file is not None:
        env["conda_yaml_file"] = "$CONFIG_DIR/" + snapshot_relative(job.environment.conda_file, root, "conda file")
    if job.environment.pip_requirements is not None:
        relative = snapshot_relative(job.environment.pip_requirements, root, "pip requirements file")
        setup.append(f"pip install -r {shlex.quote(relative)}")
    install = himl_setup(job)
    if install is not None:
        setup.append(install)
    if setup:
        env["setup"] = setup
    return env


def _datasets(job: JobSpec, settings: AmuletSettings) -> tuple[dict[str, Any] | None, dict[str, str]]:
    datasets = [*job.input_datasets, *job.output_datasets]
    if not datasets:
        return None, {}
    if not settings.storage_account:
        raise HimlError(
            "amulet: datasets are folders of a blob container mounted into the job: "
            "give its storage account with --amulet-storage-account NAME"
        )
    for dataset in datasets:
        if not dataset.name:
            raise HimlError(f"dataset {dataset.label!r} needs a name (its folder in the container) for an Amulet job")
    storage = {
        DATA_STORAGE: {
            "storage_account_name": settings.storage_account,
            "container_name": settings.container,
            "mount_dir": settings.mount_dir,
        }
    }
    env = {
        ENV_MOUNT_DIR: settings.mount_dir,
        ENV_INPUTS: json.dumps([d.name for d in job.input_datasets]),
        ENV_OUTPUTS: json.dumps([d.name for d in job.output_datasets]),
    }
    return storage, env


def _job_entry(job: JobSpec, settings: AmuletSettings, name: str, command: str, env: dict[str, str]) -> dict[str, Any]:
    sku, env_defaults = _sku(job, settings)
    entry: dict[str, Any] = {"name": name, "sku": sku, "command": [command]}
    count = _process_count(job, env_defaults)
    if count is not None:
        entry["process_count_per_node"] = count
    if settings.sla_tier:
        entry["sla_tier"] = settings.sla_tier
    if settings.priority:
        entry["priority"] = settings.priority
    if settings.preemptible is not None:
        entry["preemptible"] = settings.preemptible
    entry["submit_args"] = {"env": env}
    return entry


def searchable(sweep: Sweep) -> bool:
    """Whether Amulet's grid ``search`` can express ``sweep``: a grid over plain values."""
    if sweep.sampling != "grid" or sweep.max_trials is not None:
        return False
    for values in sweep.parameters.values():
        if isinstance(values, Uniform) or not all(isinstance(v, bool | int | float | str) for v in values):
            return False
    return all(re.fullmatch(r"\w+", name) for name in sweep.parameters)


def build_config(job: JobSpec, settings: AmuletSettings) -> dict[str, Any]:
    """The Amulet configuration for ``job``, as a plain document, checked against the schema."""
    if not settings.target:
        raise HimlError("an Amulet job needs a target: --amulet-target NAME (the Singularity virtual cluster)")
    storage, dataset_env = _datasets(job, settings)
    env = {
        **job.env_vars,
        ENV_BACKEND: BACKEND,  # inside AzureML, this job is Amulet's: the AzureML plugins leave it alone
        ENV_WIRE_FORMAT: str(WIRE_FORMAT),
        **dataset_env,
    }
    if job.entry.kind == "container":
        env[ENV_LIGHTNING] = "1"
    target: dict[str, Any] = {"service": settings.service, "name": settings.target}
    if settings.workspace:
        target["workspace_name"] = settings.workspace
    document: dict[str, Any] = {
        "description": f"himl: {job.display_name or job.entry} (experiment {job.experiment})",
        "target": target,
        "environment": _environment(job),
        "code": {"local_dir": "$CONFIG_DIR"},
    }
    if storage:
        document["storage"] = storage
    _, env_defaults = _sku(job, settings)
    if env_defaults:
        document["env_defaults"] = env_defaults
    command = shlex.join(job.entry.command(python="python"))
    if job.entry.kind == "container":
        # Amulet sets RANK, and Lightning would take every process it starts for rank zero (hi-ml's
        # prepare_amulet_job removes it too); the shell drops it before himl starts.
        command = f"env -u RANK {command}"
    name = job_name(job)
    sweep = job.sweep
    if sweep is None:
        document["jobs"] = [_job_entry(job, settings, name, command, env)]
    elif searchable(sweep):
        placeholders = " ".join(f"--{p} {{{p}}}" for p in sweep.parameters)
        # e.g. HelloWorld_crossval_index{crossval_index}
        trial_name = name + "".join(f"_{p}{{{p}}}" for p in sweep.parameters)
        search: dict[str, Any] = {
            "job_template": _job_entry(job, settings, trial_name, f"{command} {placeholders}", env),
            "type": "grid",
            "max_trials": len(sweep.trials()),
            "parallel_trials": sweep.max_parallel,
            "params": [
                {"name": p, "spec": "discrete", "values": [_plain(v) for v in values]}
                for p, values in sweep.parameters.items()
            ],
        }
        document["search"] = search
    else:
        document["jobs"] = [
            _job_entry(job, settings, f"{name}-trial{i}", shlex.join([*shlex.split(command), *trial_arguments(t)]), env)
            for i, t in enumerate(sweep.trials())
        ]
    validate_config(document, "the Amulet configuration himl built")
    return document


def _plain(value: Any) -> Any:
    return value if isinstance(value, bool | int | float | str) else format_cli_value(value)


def config_yaml(document: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def load_config(path: Path) -> AmuletConfig:
    """An ``amlt.yaml`` read back and checked against the schema (one line on a bad file or value)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HimlError(f"{path}: cannot read an Amulet configuration: {first}") from None
    return validate_config(data, str(path))
