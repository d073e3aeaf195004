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


#: Where a private wheel goes in the workspace's blob store (hi-ml v1's ``add_private_pip_wheel`` folder),
#: below a folder named by the wheel's content, so that a changed wheel makes a new environment.
PRIVATE_WHEEL_FOLDER = "azureml-private-packages"


def private_wheel(path: str | Path) -> Path:
    """``path`` checked to be a wheel file (``*.whl``); a one-line error otherwise."""
    wheel = Path(path)
    if wheel.suffix != ".whl" or not wheel.is_file():
        raise HimlError(f"private_pip_wheel_path {str(wheel)!r} must be an existing wheel file (*.whl)")
    return wheel.resolve()


def private_wheel_blob(path: Path) -> str:
    """The wheel's blob name: ``azureml-private-packages/<sha256 prefix>/<file name>``."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"{PRIVATE_WHEEL_FOLDER}/{digest}/{path.name}"


def check_index_url(url: str) -> str:
    """A pip index URL: ``http(s)://`` with a host, no spaces (it becomes a line of the conda file)."""
    from urllib.parse import urlsplit

    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in text):
        raise HimlError(f"pip_extra_index_url {url!r} must be an http(s):// URL, such as https://test.pypi.org/simple/")
    return text


def _with_pip_lines(conda: dict[str, Any], head: list[str], tail: list[str]) -> dict[str, Any]:
    """``conda`` with ``head`` first and ``tail`` last in its pip section (added when it has none)."""
    if not head and not tail:
        return conda
    dependencies = list(conda.get("dependencies") or [])
    for index, item in enumerate(dependencies):
        if isinstance(item, dict) and "pip" in item:
            dependencies[index] = {**item, "pip": [*head, *(item.get("pip") or []), *tail]}
            break
    else:
        if not any(isinstance(d, str) and d.split("=")[0].strip() == "pip" for d in dependencies):
            dependencies.append("pip")
        dependencies.append({"pip": [*head, *tail]})
    return {**conda, "dependencies": dependencies}


def definition_of(
    env: Environment,
    snapshot_root: Path | None = None,
    *,
    pip_extra_index_url: str = "",
    extra_pip_packages: list[str] | None = None,
) -> EnvironmentDefinition:
    """The environment a JobSpec asks for; ``environment.yml`` in the snapshot root when it names no conda or
    pip file, on top of its docker image if it gives one (hi-ml's behaviour: the user's packages are installed
    in that image, not left out).

    ``pip_extra_index_url`` (hi-ml's argument) becomes an ``--extra-index-url`` line of the pip section, and
    ``extra_pip_packages`` (a private wheel's URL) is installed after the file's own packages.

    Raises:
        HimlError: nothing was given and the snapshot root has no ``environment.yml``, the conda file is
            not a YAML mapping, or pip lines were asked for an image without a conda or pip file.
    """
    head = ["--extra-index-url " + check_index_url(pip_extra_index_url)] if pip_extra_index_url else []
    tail = list(extra_pip_packages or [])
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
        return EnvironmentDefinition(env.docker_image or DEFAULT_IMAGE, _with_pip_lines(conda, head, tail))
    if env.pip_requirements is not None:
        python = f"python={sys.version_info.major}.{sys.version_info.minor}"
        conda = {
            "name": "himl",
            "channels": ["conda-forge"],
            "dependencies": [python, "pip", {"pip": [*head, *_pip_lines(Path(env.pip_requirements)), *tail]}],
        }
        return EnvironmentDefinition(env.docker_image or DEFAULT_IMAGE, conda)
    if head or tail:
        raise HimlError(
            "pip_extra_index_url and private_pip_wheel_path need a conda environment file or a pip requirements "
            "file to add their packages to (a docker image alone has no pip section)"
        )
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
