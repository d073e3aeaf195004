"""The SDK v1 workspace: azureml-core's ``Workspace``, its authentication, and its compute targets.

Which workspace: a ``config.json`` in the current folder or above it (also as
``.azureml/config.json``), as azureml-core's ``Workspace.from_config`` finds it;
else the variables ``HIML_SUBSCRIPTION_ID``, ``HIML_RESOURCE_GROUP`` and
``HIML_WORKSPACE_NAME``, the same as for the SDK v2 plugin.

Which login, in order: a service principal from ``HIML_SERVICE_PRINCIPAL_ID``,
``HIML_SERVICE_PRINCIPAL_PASSWORD`` and ``HIML_TENANT_ID``; else azureml-core's
interactive login (which uses the Azure CLI's ``az login`` when there is one).
Messages name variables, never their values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from azureml.core import Workspace

ENV_SP_ID = "HIML_SERVICE_PRINCIPAL_ID"
ENV_SP_PASSWORD = "HIML_SERVICE_PRINCIPAL_PASSWORD"
ENV_TENANT = "HIML_TENANT_ID"
ENV_SUBSCRIPTION = "HIML_SUBSCRIPTION_ID"
ENV_RESOURCE_GROUP = "HIML_RESOURCE_GROUP"
ENV_WORKSPACE = "HIML_WORKSPACE_NAME"
#: Where a workspace's configuration file is looked for, in each folder from here up.
CONFIG_NAMES = ("config.json", ".azureml/config.json")


def authentication(environ: Mapping[str, str] | None = None) -> Any:
    """The azureml-core authentication object; building it contacts nothing, the first request does.

    Raises:
        HimlError: some, but not all, of the service principal variables are set.
    """
    env = os.environ if environ is None else environ
    names = (ENV_SP_ID, ENV_SP_PASSWORD, ENV_TENANT)
    present = [name for name in names if env.get(name, "").strip()]
    if present and len(present) < len(names):
        missing = ", ".join(name for name in names if name not in present)
        raise HimlError(
            f"service principal login needs {', '.join(names)}; {missing} not set "
            "(unset all three to use the interactive or Azure CLI login instead)"
        )
    if present:
        from azureml.core.authentication import ServicePrincipalAuthentication

        return ServicePrincipalAuthentication(
            tenant_id=env[ENV_TENANT].strip(),
            service_principal_id=env[ENV_SP_ID].strip(),
            service_principal_password=env[ENV_SP_PASSWORD],
        )
    from azureml.core.authentication import InteractiveLoginAuthentication

    return InteractiveLoginAuthentication(tenant_id=env.get(ENV_TENANT, "").strip() or None)


def workspace_names(environ: Mapping[str, str] | None = None, start: Path | None = None) -> tuple[str, str, str]:
    """Subscription, resource group and workspace name, from ``config.json`` (here or above) or the variables.

    Raises:
        HimlError: neither names a workspace, or the file found is not a workspace configuration.
    """
    env = os.environ if environ is None else environ
    folder = (start or Path.cwd()).resolve()
    if folder.is_file():  # the configuration file itself
        return _read_config(folder)
    for candidate in [folder, *folder.parents]:
        for name in CONFIG_NAMES:
            path = candidate / name
            if path.is_file():
                return _read_config(path)
    names = tuple(env.get(name, "").strip() for name in (ENV_SUBSCRIPTION, ENV_RESOURCE_GROUP, ENV_WORKSPACE))
    if not all(names):
        raise HimlError(
            "no AzureML workspace: put its config.json in this folder (or above it), "
            f"or set {ENV_SUBSCRIPTION}, {ENV_RESOURCE_GROUP} and {ENV_WORKSPACE}"
        )
    return names[0], names[1], names[2]


def _read_config(path: Path) -> tuple[str, str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HimlError(f"workspace configuration {str(path)!r} is not readable JSON: {exc}") from None
    keys = ("subscription_id", "resource_group", "workspace_name")
    if not isinstance(data, dict) or not all(isinstance(data.get(key), str) and data[key] for key in keys):
        raise HimlError(f"workspace configuration {str(path)!r} needs {', '.join(keys)} (text)")
    return data["subscription_id"], data["resource_group"], data["workspace_name"]


def get_workspace(environ: Mapping[str, str] | None = None, config_start: Path | None = None) -> Workspace:
    """The workspace a ``config.json`` (here or above) or the ``HIML_*`` variables name, logged in.

    Raises:
        HimlError: no workspace is named, the login fails, or the workspace does not exist.
    """
    from azureml.core import Workspace
    from azureml.exceptions import AuthenticationException, WorkspaceException

    subscription, group, name = workspace_names(environ, config_start)
    try:
        return Workspace(subscription, group, name, auth=authentication(environ))
    except AuthenticationException as exc:
        raise HimlError(f"AzureML login failed: {_first_line(exc)}") from None
    except WorkspaceException as exc:
        raise HimlError(f"AzureML workspace {name!r}: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    message = getattr(exc, "message", "") or str(exc)
    return next((line.strip() for line in str(message).splitlines() if line.strip()), type(exc).__name__)


def check_compute_target(workspace: Workspace, name: str) -> None:
    """A one-line error naming the workspace's compute targets when ``name`` is not one of them."""
    from azureml.core.compute import ComputeTarget
    from azureml.exceptions import ComputeTargetException

    try:
        ComputeTarget(workspace=workspace, name=name)
    except ComputeTargetException:
        known = sorted(str(target.name) for target in ComputeTarget.list(workspace))
        raise HimlError(
            f"unknown compute cluster {name!r} in workspace {workspace.name!r}; "
            f"known: {', '.join(known) if known else '(none)'}"
        ) from None
