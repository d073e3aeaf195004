"""The software environment of an AzureML job, registered under a name derived from its content.

A JobSpec gives a conda file, a pip requirements file, a docker image, or a
docker image with one of the files. The environment is named
``himl-<hash of image and conda definition>`` (version ``1``): the same
definition always gets the same name, so it is registered once per workspace
and reused by every later job, and AzureML builds its image once.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import Environment as AzureEnvironment

    from himl_kernel.job import Environment

#: The base image for conda and pip environments when no docker image is given: hi-ml's, a CUDA image at a
#: pinned tag (a GPU job gets CUDA, and the image cannot change under a user between two submissions).
DEFAULT_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.3-cudnn8-ubuntu20.04:20230509.v1"
#: The shared memory of a job when none is given (hi-ml's ``docker_shm_size``): data loaders with workers need it.
DEFAULT_SHM_SIZE = "100g"
ENVIRONMENT_VERSION = "1"


@dataclass(frozen=True)
class EnvironmentDefinition:
    """What an AzureML environment is made of, and its content-derived name."""

    image: str
    conda: dict[str, Any] | None

    @property
    def name(self) -> str:
        canonical = json.dumps({"image": self.image, "conda": self.conda}, sort_keys=True)
        return "himl-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def reference(self) -> str:
        """How a job names it: ``azureml:<name>:<version>``."""
        return f"azureml:{self.name}:{ENVIRONMENT_VERSION}"

    def entity(self) -> AzureEnvironment:
        from azure.ai.ml.entities import Environment as AzureEnvironment

        return AzureEnvironment(
            name=self.name,
            version=ENVIRONMENT_VERSION,
            image=self.image,
            conda_file=self.conda,
            description="registered by himl; the name is derived from the image and conda definition",
        )


def _pip_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def definition_of(env: Environment, snapshot_root: Path | None = None) -> EnvironmentDefinition:
    """The environment a JobSpec asks for; ``environment.yml`` in the snapshot root when it names no conda or
    pip file, on top of its docker image if it gives one (hi-ml's behaviour: the user's packages are installed
    in that image, not left out).

    Raises:
        HimlError: nothing was given and the snapshot root has no ``environment.yml``, or the conda file is
            not a YAML mapping.
    """
    conda_file = env.conda_file
    if conda_file is None and env.pip_requirements is None and snapshot_root is not None:
        fallback = snapshot_root / "environment.yml"
        conda_file = fallback if fallback.is_file() else None
    if conda_file is not None:
        try:
            conda = yaml.safe_load(Path(conda_file).read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise HimlError(f"conda file {str(conda_file)!r} is not valid YAML: {exc}".splitlines()[0]) from None
        if not isinstance(conda, dict) or "dependencies" not in conda:
            raise HimlError(f"conda file {str(conda_file)!r} must be a mapping with 'dependencies'")
        return EnvironmentDefinition(env.docker_image or DEFAULT_IMAGE, conda)
    if env.pip_requirements is not None:
        python = f"python={sys.version_info.major}.{sys.version_info.minor}"
        conda = {
            "name": "himl",
            "channels": ["conda-forge"],
            "dependencies": [python, "pip", {"pip": _pip_lines(Path(env.pip_requirements))}],
        }
        return EnvironmentDefinition(env.docker_image or DEFAULT_IMAGE, conda)
    if env.docker_image:
        return EnvironmentDefinition(env.docker_image, None)
    raise HimlError(
        "an AzureML job needs a software environment: give --conda-file, --pip-requirements or --docker-image "
        "(or put an environment.yml in the snapshot root)"
    )


def ensure_registered(client: MLClient, definition: EnvironmentDefinition) -> bool:
    """Register the environment unless the workspace has it already; True when it was registered now."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        client.environments.get(definition.name, version=ENVIRONMENT_VERSION)
        return False
    except ResourceNotFoundError:
        client.environments.create_or_update(definition.entity())
        return True
