"""The Azure credential himl uses, built only when a client needs one.

In order: a service principal from ``HIML_SERVICE_PRINCIPAL_ID``,
``HIML_SERVICE_PRINCIPAL_PASSWORD`` and ``HIML_TENANT_ID``; inside an
AzureML job, the job's own identity (below); else the Azure CLI's login
(``az login``); else a device-code login in the terminal. No secret is ever
printed: messages name variables, never their values.

Inside a job (``AZUREML_RUN_ID`` set), code that reaches other runs and
datastores authenticates as the job:

- a job submitted with ``identity_based_auth`` (``HIML_IDENTITY_BASED_AUTH=1``,
  or AzureML's ``AZUREML_OBO_ENABLED``) as the submitting user, through
  azure-ai-ml's ``AzureMLOnBehalfOfCredential``;
- a compute with a managed identity (``DEFAULT_IDENTITY_CLIENT_ID``, or the
  identity endpoint AzureML sets) through ``ManagedIdentityCredential``;
- else the job's AzureML run token (``AZUREML_RUN_TOKEN``, valid until
  ``AZUREML_RUN_TOKEN_EXPIRY``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential

ENV_SP_ID = "HIML_SERVICE_PRINCIPAL_ID"
ENV_SP_PASSWORD = "HIML_SERVICE_PRINCIPAL_PASSWORD"
ENV_TENANT = "HIML_TENANT_ID"
SERVICE_PRINCIPAL_VARIABLES = (ENV_SP_ID, ENV_SP_PASSWORD, ENV_TENANT)
ENV_IDENTITY_BASED_AUTH = "HIML_IDENTITY_BASED_AUTH"
ENV_RUN_TOKEN = "AZUREML_RUN_TOKEN"
ENV_RUN_TOKEN_EXPIRY = "AZUREML_RUN_TOKEN_EXPIRY"
ENV_MANAGED_IDENTITY = "DEFAULT_IDENTITY_CLIENT_ID"


class RunTokenCredential:
    """The AzureML job's run token as an azure-core credential (``get_token`` gives it for any scope)."""

    def __init__(self, token: str, expires_on: int) -> None:
        self._token = token
        self._expires_on = expires_on

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        import time

        from azure.core.credentials import AccessToken

        if self._expires_on and self._expires_on <= time.time():
            raise HimlError(f"the job's AzureML run token ({ENV_RUN_TOKEN}) has expired")
        return AccessToken(self._token, self._expires_on or int(time.time()) + 3600)


def _in_job_kind(env: Mapping[str, str]) -> str | None:
    if not env.get("AZUREML_RUN_ID", "").strip():
        return None
    if env.get(ENV_IDENTITY_BASED_AUTH, "") == "1" or env.get("AZUREML_OBO_ENABLED", "").lower() == "true":
        return "job user identity"
    if env.get(ENV_MANAGED_IDENTITY, "").strip() or env.get("IDENTITY_ENDPOINT", "").strip():
        return "job managed identity"
    if env.get(ENV_RUN_TOKEN, "").strip():
        return "job run token"
    return None


def credential_kind(environ: Mapping[str, str] | None = None) -> str:
    """``service principal`` when its three variables are set; inside a job, ``job user identity``,
    ``job managed identity`` or ``job run token``; else ``azure cli, then device code``.

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
    if present:
        return "service principal"
    return _in_job_kind(env) or "azure cli, then device code"


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
    if kind == "job user identity":
        from azure.ai.ml.identity import AzureMLOnBehalfOfCredential

        return AzureMLOnBehalfOfCredential()
    if kind == "job managed identity":
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=env.get(ENV_MANAGED_IDENTITY, "").strip() or None)
    if kind == "job run token":
        expiry = env.get(ENV_RUN_TOKEN_EXPIRY, "").strip()
        try:
            expires_on = int(float(expiry)) if expiry else 0
        except ValueError:
            raise HimlError(f"{ENV_RUN_TOKEN_EXPIRY}={expiry!r} is not a time in seconds since 1970") from None
        return RunTokenCredential(env[ENV_RUN_TOKEN].strip(), expires_on)
    from azure.identity import AzureCliCredential, ChainedTokenCredential, DeviceCodeCredential

    tenant = env.get(ENV_TENANT, "").strip() or None
    return ChainedTokenCredential(AzureCliCredential(tenant_id=tenant or ""), DeviceCodeCredential(tenant_id=tenant))
