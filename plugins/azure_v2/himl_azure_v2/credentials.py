"""The Azure credential himl uses, built only when a client needs one.

In order: a service principal from ``HIML_SERVICE_PRINCIPAL_ID``,
``HIML_SERVICE_PRINCIPAL_PASSWORD`` and ``HIML_TENANT_ID``; else the Azure
CLI's login (``az login``); else a device-code login in the terminal. No
secret is ever printed: messages name variables, never their values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

ENV_SP_ID = "HIML_SERVICE_PRINCIPAL_ID"
ENV_SP_PASSWORD = "HIML_SERVICE_PRINCIPAL_PASSWORD"
ENV_TENANT = "HIML_TENANT_ID"
SERVICE_PRINCIPAL_VARIABLES = (ENV_SP_ID, ENV_SP_PASSWORD, ENV_TENANT)


def credential_kind(environ: Mapping[str, str] | None = None) -> str:
    """``service principal`` when its three variables are set, else ``azure cli, then device code``.

    Raises:
        HimlError: some, but not all, of the service principal variables are set.
    """
    env = os.environ if environ is None else environ
    present = [n for n in SERVICE_PRINCIPAL_VARIABLES if env.get(n, "").strip()]
    if present and len(present) < len(SERVICE_PRINCIPAL_VARIABLES):
        missing = [n for n in SERVICE_PRINCIPAL_VARIABLES if n not in present]
        raise HimlError(
            f"service principal login needs {', '.join(SERVICE_PRINCIPAL_VARIABLES)}; "
            f"{', '.join(missing)} not set (unset all three to use the Azure CLI login instead)"
        )
    return "service principal" if present else "azure cli, then device code"


def build_credential(environ: Mapping[str, str] | None = None) -> TokenCredential:
    """The credential chain; constructing it contacts nothing, the first token request does."""
    env = os.environ if environ is None else environ
    kind = credential_kind(env)
    if kind == "service principal":
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(
            tenant_id=env[ENV_TENANT].strip(),
            client_id=env[ENV_SP_ID].strip(),
            client_secret=env[ENV_SP_PASSWORD],
        )
    from azure.identity import AzureCliCredential, ChainedTokenCredential, DeviceCodeCredential

    tenant = env.get(ENV_TENANT, "").strip() or None
    return ChainedTokenCredential(AzureCliCredential(tenant_id=tenant or ""), DeviceCodeCredential(tenant_id=tenant))
