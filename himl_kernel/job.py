"""JobSpec: everything a compute backend needs to run one job (or one sweep).

The kernel builds a JobSpec from ``himl run``, ``himl submit`` or
``submit_if_needed(...)``; plugins may amend it in ``himl_configure_job``; the
chosen backend receives it. ``to_dict()`` is what ``--dry-run`` prints for
backends that have no richer rendering of their own.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from himl_kernel.datasets import DatasetConfig
from himl_kernel.errors import HimlError
from himl_kernel.snapshot import Snapshot
from himl_kernel.sweep import Sweep

EntryKind = Literal["script", "module", "container"]


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``2h`` or ``1d``."""
    match = _DURATION.match(text)
    if not match:
        raise HimlError(f"--max-run-duration: {text!r} is not a duration; expected e.g. 90s, 30m, 2h or 1d")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


@dataclass
class Entry:
    """What runs: a script path, a module name (``python -m``) or a container name.

    Attributes:
        kind: ``script``, ``module`` or ``container``.
        target: the script path (relative to the snapshot root where possible),
            the module name, or the container's registered name.
        args: arguments after it, as a list of strings.
    """

    kind: EntryKind
    target: str
    args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in ("script", "module", "container"):
            raise HimlError(f"entry kind must be script, module or container, got {self.kind!r}")
        if not self.target:
            raise HimlError(f"a {self.kind} entry needs a target")
        self.args = [str(a) for a in self.args]

    def command(self, python: str = "") -> list[str]:
        """The command line that runs this entry inside a job."""
        python = python or sys.executable
        if self.kind == "script":
            return [python, self.target, *self.args]
        if self.kind == "module":
            return [python, "-m", self.target, *self.args]
        return [python, "-m", "himl_kernel", "run", "--model", self.target, *self.args]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "args": list(self.args)}

    def __str__(self) -> str:
        return shlex.join([self.target, *self.args])


@dataclass
class Environment:
    """The software a job needs; at most one of the three is usually given.

    Attributes:
        conda_file: a conda environment YAML file.
        pip_requirements: a pip requirements file.
        docker_image: a base image (with ``conda_file``/``pip_requirements``
            layered on top by backends that build images).
        shm_size: shared memory for the container, e.g. ``"100g"``.
    """

    conda_file: Path | None = None
    pip_requirements: Path | None = None
    docker_image: str = ""
    shm_size: str = ""

    def __post_init__(self) -> None:
        for attr in ("conda_file", "pip_requirements"):
            value = getattr(self, attr)
            if value is not None:
                path = Path(value)
                if not path.is_file():
                    raise HimlError(f"{attr} {str(path)!r} does not exist or is not a file")
                setattr(self, attr, path.resolve())

    def to_dict(self) -> dict[str, Any]:
        return {
            "conda_file": str(self.conda_file) if self.conda_file else None,
            "pip_requirements": str(self.pip_requirements) if self.pip_requirements else None,
            "docker_image": self.docker_image or None,
            "shm_size": self.shm_size or None,
        }


@dataclass
class Compute:
    """Where and how wide a job runs.

    Attributes:
        backend: the compute backend's registered name (``local``, ``azureml``...).
        target: the backend's compute target (a cluster name); empty for local.
        num_nodes: machines for a distributed job.
        processes_per_node: processes on each machine (e.g. one per GPU).
        options: backend-specific settings (set by the plugin's own CLI options).
    """

    backend: str = "local"
    target: str = ""
    num_nodes: int = 1
    processes_per_node: int = 1
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_nodes < 1:
            raise HimlError(f"num_nodes must be at least 1, got {self.num_nodes}")
        if self.processes_per_node < 1:
            raise HimlError(f"processes_per_node must be at least 1, got {self.processes_per_node}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "target": self.target or None,
            "num_nodes": self.num_nodes,
            "processes_per_node": self.processes_per_node,
            "options": dict(self.options),
        }


@dataclass
class JobSpec:
    """One job, or one sweep of jobs, as handed to a compute backend.

    Attributes:
        entry: what runs, with its arguments.
        snapshot: the code folder and its ignore rules.
        environment: conda file, pip requirements or docker image.
        compute: backend, target, nodes and processes per node.
        input_datasets: datasets the job reads, in order.
        output_datasets: datasets the job writes, in order.
        env_vars: environment variables set for the job.
        tags: tags on the run (strings).
        experiment: the experiment (MLflow experiment / AzureML experiment).
        display_name: the run's name; empty lets the backend choose.
        sweep: trials to run as child runs (hyperparameters, folds, seeds).
        max_run_duration_s: seconds after which the job is stopped; ``None``: no limit.
        wait_for_completion: whether submission waits for the job to end.
    """

    entry: Entry
    snapshot: Snapshot = field(default_factory=Snapshot)
    environment: Environment = field(default_factory=Environment)
    compute: Compute = field(default_factory=Compute)
    input_datasets: list[DatasetConfig] = field(default_factory=list)
    output_datasets: list[DatasetConfig] = field(default_factory=list)
    env_vars: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    experiment: str = "default"
    display_name: str = ""
    sweep: Sweep | None = None
    max_run_duration_s: float | None = None
    wait_for_completion: bool = True

    def __post_init__(self) -> None:
        if not self.experiment:
            raise HimlError("a job needs an experiment name")
        if self.max_run_duration_s is not None and self.max_run_duration_s <= 0:
            raise HimlError(f"max_run_duration_s must be positive, got {self.max_run_duration_s}")
        self.env_vars = {str(k): str(v) for k, v in self.env_vars.items()}
        self.tags = {str(k): str(v) for k, v in self.tags.items()}

    def to_dict(self) -> dict[str, Any]:
        from himl_kernel.runinfo import WIRE_FORMAT

        return {
            "wire_format": WIRE_FORMAT,  # what a reader of this document checks first (himl_kernel.runinfo)
            "entry": self.entry.to_dict(),
            "snapshot": self.snapshot.to_dict(),
            "environment": self.environment.to_dict(),
            "compute": self.compute.to_dict(),
            "input_datasets": [d.to_dict() for d in self.input_datasets],
            "output_datasets": [d.to_dict() for d in self.output_datasets],
            "env_vars": dict(self.env_vars),
            "tags": dict(self.tags),
            "experiment": self.experiment,
            "display_name": self.display_name or None,
            "sweep": self.sweep.to_dict() if self.sweep else None,
            "max_run_duration_s": self.max_run_duration_s,
            "wait_for_completion": self.wait_for_completion,
        }


@dataclass
class Submission:
    """What a backend reports after submitting.

    Attributes:
        backend: the backend's name.
        run_id: the run (or parent run, for a sweep) it created.
        url: where to follow it (a studio URL, a local folder); may be empty.
        status: the final status when the backend waited (``FINISHED``,
            ``FAILED``...), else the status at submission.
        child_run_ids: the trials' runs, when known.
        exit_code: for jobs that ran here, the process exit code.
    """

    backend: str
    run_id: str
    url: str = ""
    status: str = ""
    child_run_ids: list[str] = field(default_factory=list)
    exit_code: int = 0

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.status not in ("FAILED", "KILLED")
