"""Workspace configuration and the credential chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from azure.identity import ChainedTokenCredential, ClientSecretCredential
from himl_azure_v2.config import find_workspace_config
from himl_azure_v2.credentials import build_credential, credential_kind

from himl_kernel.cli.main import main
from himl_kernel.errors import HimlError

CONFIG = {"subscription_id": "sub-1", "resource_group": "rg-1", "workspace_name": "ws-1"}


def test_config_json_is_found_in_a_parent_folder_and_under_dot_azureml(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    (tmp_path / "a" / ".azureml").mkdir()
    (tmp_path / "a" / ".azureml" / "config.json").write_text(json.dumps(CONFIG))
    found = find_workspace_config(start=deep, environ={})
    assert (found.subscription_id, found.resource_group, found.workspace_name) == ("sub-1", "rg-1", "ws-1")
    assert found.source == str(tmp_path / "a" / ".azureml" / "config.json")
    (deep / "config.json").write_text(json.dumps({**CONFIG, "workspace_name": "nearer"}))
    assert find_workspace_config(start=deep, environ={}).workspace_name == "nearer"


def test_variables_name_the_workspace_when_no_file_exists(tmp_path: Path) -> None:
    env = {"HIML_SUBSCRIPTION_ID": "s", "HIML_RESOURCE_GROUP": "r", "HIML_WORKSPACE_NAME": "w"}
    found = find_workspace_config(start=tmp_path, environ=env)
    assert (found.workspace_name, found.source) == ("w", "environment variables")
    assert (
        found.workspace_id
        == "/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w"
    )


def test_nothing_found_lists_every_file_and_variable_looked_at(tmp_path: Path) -> None:
    with pytest.raises(HimlError) as error:
        find_workspace_config(start=tmp_path, environ={"HIML_SUBSCRIPTION_ID": "s"})
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "config.json") in message and str(tmp_path / ".azureml" / "config.json") in message
    assert "/config.json" in message.split(str(tmp_path / ".azureml" / "config.json"))[1]  # the parents too
    assert "HIML_RESOURCE_GROUP, HIML_WORKSPACE_NAME are not set" in message
    assert "HIML_SUBSCRIPTION_ID" not in message.split("variables")[1]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not valid JSON: Expecting property name enclosed in double quotes at line 1"),
        ("[1, 2]", "must hold a JSON object with keys subscription_id, resource_group, workspace_name"),
        (json.dumps({"subscription_id": "s"}), "lacks resource_group, workspace_name"),
    ],
)
def test_malformed_config_json_is_a_one_line_error(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(HimlError, match=expected):
        find_workspace_config(start=tmp_path, environ={})


def test_cli_reports_a_missing_and_a_malformed_config_in_one_line(
    himl_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("data").mkdir()
    assert main(["azure", "upload", "data", "x"]) == 2
    Path("config.json").write_text("{")
    assert main(["azure", "upload", "data", "x"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("himl: error:")]
    assert len(errors) == 2
    assert errors[0].startswith("himl: error: no AzureML workspace is configured: no config file at ")
    assert errors[1].startswith(f"himl: error: AzureML config file '{Path.cwd() / 'config.json'}' is not valid JSON")


def test_credential_chain_service_principal_then_cli_then_device_code() -> None:
    env = {"HIML_SERVICE_PRINCIPAL_ID": "id", "HIML_SERVICE_PRINCIPAL_PASSWORD": "pw", "HIML_TENANT_ID": "t"}
    assert credential_kind(env) == "service principal"
    assert isinstance(build_credential(env), ClientSecretCredential)
    chained = build_credential({})
    assert isinstance(chained, ChainedTokenCredential)
    assert [type(c).__name__ for c in chained.credentials] == ["AzureCliCredential", "DeviceCodeCredential"]


def test_a_partial_service_principal_names_the_missing_variables_not_the_values() -> None:
    with pytest.raises(HimlError) as error:
        credential_kind({"HIML_SERVICE_PRINCIPAL_PASSWORD": "hunter2-secret"})
    assert "HIML_SERVICE_PRINCIPAL_ID, HIML_TENANT_ID not set" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_inside_a_job_the_credential_is_the_jobs_identity_or_run_token() -> None:
    import time

    from azure.ai.ml.identity import AzureMLOnBehalfOfCredential
    from azure.identity import ManagedIdentityCredential
    from himl_azure_v2.credentials import RunTokenCredential

    job = {"AZUREML_RUN_ID": "job_1", "AZUREML_RUN_TOKEN": "tok-abc", "AZUREML_RUN_TOKEN_EXPIRY": str(time.time() + 60)}
    assert credential_kind(job) == "job run token"
    token = build_credential(job).get_token("https://management.azure.com/.default")
    assert isinstance(build_credential(job), RunTokenCredential) and token.token == "tok-abc"
    managed = {**job, "DEFAULT_IDENTITY_CLIENT_ID": "0000-client"}
    assert credential_kind(managed) == "job managed identity"
    assert isinstance(build_credential(managed), ManagedIdentityCredential)
    user = {**managed, "HIML_IDENTITY_BASED_AUTH": "1"}  # submitted with identity_based_auth=True
    assert credential_kind(user) == "job user identity"
    assert isinstance(build_credential(user), AzureMLOnBehalfOfCredential)
    assert credential_kind({"AZUREML_RUN_TOKEN": "tok"}) == "azure cli, then device code"  # not inside a job
    expired = {**job, "AZUREML_RUN_TOKEN_EXPIRY": "1"}
    with pytest.raises(HimlError, match=r"^the job's AzureML run token \(AZUREML_RUN_TOKEN\) has expired$"):
        build_credential(expired).get_token("scope")
    with pytest.raises(HimlError, match=r"^AZUREML_RUN_TOKEN_EXPIRY='soon' is not a time in seconds since 1970$"):
        build_credential({**job, "AZUREML_RUN_TOKEN_EXPIRY": "soon"})
