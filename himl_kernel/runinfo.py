"""RunInfo: what a running job knows about itself, and the wire format that carries it into the job.

A backend that launches a job tells it who it is through environment
variables (:meth:`RunInfo.to_environ`); the job reads them back
(:meth:`RunInfo.from_environ`). That set of variables, and the JobSpec's
``to_dict()`` document, is the wire format between the himl that submits and
the himl inside the job, which may be another version. It carries
``HIML_WIRE_FORMAT`` (:data:`WIRE_FORMAT`): a job whose environment names a
format this himl does not know refuses it in one line, instead of misreading
the variables. An environment without the variable is format 1, the format
before it was numbered.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Environment variables through which a backend tells a job who it is. A
#: backend that launches processes sets them; ``RunInfo.from_environ`` reads them.
ENV_RUN_ID = "HIML_RUN_ID"
ENV_PARENT_RUN_ID = "HIML_PARENT_RUN_ID"
ENV_BACKEND = "HIML_BACKEND"
ENV_OUTPUT_FOLDER = "HIML_OUTPUT_FOLDER"
ENV_LOGS_FOLDER = "HIML_LOGS_FOLDER"
ENV_INPUT_DATASETS = "HIML_INPUT_DATASETS"
ENV_OUTPUT_DATASETS = "HIML_OUTPUT_DATASETS"
ENV_IS_REMOTE = "HIML_IS_REMOTE"
ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
ENV_WIRE_FORMAT = "HIML_WIRE_FORMAT"

#: The wire format this himl writes; raise it when a variable changes meaning or shape.
WIRE_FORMAT = 1
#: The wire formats this himl can read.
KNOWN_WIRE_FORMATS = frozenset({1})


def check_wire_format(environ: Mapping[str, str]) -> int:
    """The wire format ``environ`` is written in; a :class:`HimlError` if this himl cannot read it."""
    from himl_kernel.errors import HimlError

    raw = environ.get(ENV_WIRE_FORMAT, "").strip()
    if not raw:
        return 1
    known = ", ".join(str(v) for v in sorted(KNOWN_WIRE_FORMATS))
    try:
        version = int(raw)
    except ValueError:
        raise HimlError(f"{ENV_WIRE_FORMAT}={raw!r} is not a wire format number; this himl reads {known}") from None
    if version not in KNOWN_WIRE_FORMATS:
        from himl_kernel.version import __version__

        raise HimlError(
            f"this job was submitted in himl wire format {version} ({ENV_WIRE_FORMAT}), but this himl "
            f"({__version__}) reads only {known}: run the job with the himl version that submitted it"
        )
    return version


@dataclass
class RunInfo:
    """The current run, as the code inside a job sees it.

    Attributes:
        run_id: the run's id in its run store (an MLflow run id).
        backend: the compute backend that runs it (``local``, ``azureml``...).
        output_folder: where files that should be kept as the run's outputs go.
        logs_folder: where logs (and TensorBoard event files) go.
        input_datasets: one folder per input dataset, in the order they were
            given; ``None`` for a dataset that was not made available.
        output_datasets: one folder per output dataset, likewise.
        parent_run_id: the sweep or cross-validation parent, if any.
        is_remote: true inside a job on a remote compute (AzureML...), false here.
        tracking_uri: the MLflow tracking URI that holds the run.
    """

    run_id: str
    backend: str
    output_folder: Path
    logs_folder: Path
    input_datasets: list[Path | None] = field(default_factory=list)
    output_datasets: list[Path | None] = field(default_factory=list)
    parent_run_id: str = ""
    is_remote: bool = False
    tracking_uri: str = ""

    def to_environ(self) -> dict[str, str]:
        """The environment variables that let a child process rebuild this RunInfo."""
        env = {
            ENV_WIRE_FORMAT: str(WIRE_FORMAT),
            ENV_RUN_ID: self.run_id,
            ENV_BACKEND: self.backend,
            ENV_OUTPUT_FOLDER: str(self.output_folder),
            ENV_LOGS_FOLDER: str(self.logs_folder),
            ENV_INPUT_DATASETS: json.dumps([str(p) if p else None for p in self.input_datasets]),
            ENV_OUTPUT_DATASETS: json.dumps([str(p) if p else None for p in self.output_datasets]),
            ENV_PARENT_RUN_ID: self.parent_run_id,
            ENV_IS_REMOTE: "1" if self.is_remote else "0",
        }
        if self.tracking_uri:
            env[ENV_TRACKING_URI] = self.tracking_uri
            env["MLFLOW_RUN_ID"] = self.run_id
        return env

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> RunInfo | None:
        """The RunInfo a backend left in ``environ``, or None when there is none."""
        run_id = environ.get(ENV_RUN_ID, "")
        if not run_id:
            return None
        check_wire_format(environ)

        def folders(key: str) -> list[Path | None]:
            raw = environ.get(key, "")
            return [Path(p) if p else None for p in json.loads(raw)] if raw else []

        return cls(
            run_id=run_id,
            backend=environ.get(ENV_BACKEND, "local"),
            output_folder=Path(environ.get(ENV_OUTPUT_FOLDER) or "outputs"),
            logs_folder=Path(environ.get(ENV_LOGS_FOLDER) or "logs"),
            input_datasets=folders(ENV_INPUT_DATASETS),
            output_datasets=folders(ENV_OUTPUT_DATASETS),
            parent_run_id=environ.get(ENV_PARENT_RUN_ID, ""),
            is_remote=environ.get(ENV_IS_REMOTE, "0") == "1",
            tracking_uri=environ.get(ENV_TRACKING_URI, ""),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "wire_format": WIRE_FORMAT,
            "run_id": self.run_id,
            "backend": self.backend,
            "output_folder": str(self.output_folder),
            "logs_folder": str(self.logs_folder),
            "input_datasets": [str(p) if p else None for p in self.input_datasets],
            "output_datasets": [str(p) if p else None for p in self.output_datasets],
            "parent_run_id": self.parent_run_id,
            "is_remote": self.is_remote,
            "tracking_uri": self.tracking_uri,
        }


def current_environ() -> Mapping[str, str]:
    return os.environ
