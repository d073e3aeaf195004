"""Which AzureML workspace to use: a ``config.json`` file, else ``HIML_*`` variables.

The file is the one the AzureML studio offers for download::

    {"subscription_id": "...", "resource_group": "...", "workspace_name": "..."}

It is looked for in the given path, else in the current folder and each of its
parents (as ``config.json`` or ``.azureml/config.json``). When no file is found,
the three variables ``HIML_SUBSCRIPTION_ID``, ``HIML_RESOURCE_GROUP`` and
``HIML_WORKSPACE_NAME`` name the workspace. Nothing here talks to Azure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from himl_kernel.errors import HimlError

CONFIG_NAMES = ("config.json", ".azureml/config.json")
ENV_SUBSCRIPTION = "HIML_SUBSCRIPTION_ID"
ENV_RESOURCE_GROUP = "HIML_RESOURCE_GROUP"
ENV_WORKSPACE = "HIML_WORKSPACE_NAME"
_KEYS = ("subscription_id", "resource_group", "workspace_name")


class NoWorkspaceConfigured(HimlError):
    """No config.json was found and the HIML_* workspace variables are not set."""


@dataclass(frozen=True)
class WorkspaceConfig:
    """The three names that identify a workspace, and where they came from."""

    subscription_id: str
    resource_group: str
    workspace_name: str
    source: str

    @property
    def workspace_id(self) -> str:
        """The workspace's ARM resource id, as the studio's ``wsid`` parameter wants it."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace_name}"
        )


def candidate_files(start: Path) -> list[Path]:
    """Where a config file may be, nearest first."""
    start = start.resolve()
    return [folder / name for folder in (start, *start.parents) for name in CONFIG_NAMES]


def read_config_file(path: Path) -> WorkspaceConfig:
    """The workspace named in ``path``; a one-line error when it is not a valid config file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HimlError(f"AzureML config file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise HimlError(
            f"AzureML config file {str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from None
    if not isinstance(data, dict):
        raise HimlError(f"AzureML config file {str(path)!r} must hold a JSON object with keys {', '.join(_KEYS)}")
    missing = [k for k in _KEYS if not isinstance(data.get(k), str) or not data[k].strip()]
    if missing:
        raise HimlError(f"AzureML config file {str(path)!r} lacks {', '.join(missing)}; it needs {', '.join(_KEYS)}")
    return WorkspaceConfig(
        data["subscription_id"].strip(), data["resource_group"].strip(), data["workspace_name"].strip(), str(path)
    )


def find_workspace_config(
    config_file: str | Path | None = None,
    *,
    start: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> WorkspaceConfig:
    """The workspace to use.

    Args:
        config_file: an explicit config file; it must exist.
        start: where the search for ``config.json`` begins (default: the current folder).
        environ: where to read the ``HIML_*`` variables (default: ``os.environ``).

    Raises:
        HimlError: nothing names a workspace (the message lists every file and
            variable looked at), or the file found is malformed.
    """
    env = os.environ if environ is None else environ
    if config_file is not None:
        path = Path(config_file).expanduser()
        if not path.is_file():
            raise HimlError(f"AzureML config file {str(path)!r} does not exist")
        return read_config_file(path)
    candidates = candidate_files(start or Path.cwd())
    for path in candidates:
        if path.is_file():
            return read_config_file(path)
    names = (ENV_SUBSCRIPTION, ENV_RESOURCE_GROUP, ENV_WORKSPACE)
    values = [env.get(n, "").strip() for n in names]
    if all(values):
        return WorkspaceConfig(values[0], values[1], values[2], "environment variables")
    unset = [n for n, v in zip(names, values, strict=True) if not v]
    raise NoWorkspaceConfigured(
        "no AzureML workspace is configured: no config file at "
        + ", ".join(str(p) for p in candidates)
        + f"; and variables {', '.join(unset)} are not set"
        + " (download config.json from the workspace's page in the Azure portal, or set the three HIML_* variables)"
    )
