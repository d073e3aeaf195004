"""Azurite, the storage the transfer tests use, checks what real Blob storage checks; its wrapper fails loudly."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from tests.azure_v2.azurite import Azurite
from tests.azure_v2.control_plane import AZURITE_ACCOUNT, BLOB_CONTAINER


def test_a_wrong_account_key_is_refused(azurite: Azurite, fresh_containers: BlobServiceClient) -> None:
    wrong_key = "A" * 86 + "=="  # well-formed base64, not the account's key
    intruder = BlobServiceClient(
        azurite.account_url, credential={"account_name": AZURITE_ACCOUNT, "account_key": wrong_key}
    )
    with pytest.raises(HttpResponseError) as refused:
        intruder.get_blob_client(BLOB_CONTAINER, "x.txt").upload_blob(b"x")
    assert refused.value.status_code == 403 and refused.value.error_code == "AuthorizationFailure"
    assert not fresh_containers.get_blob_client(BLOB_CONTAINER, "x.txt").exists()


def test_an_upload_whose_md5_does_not_match_its_bytes_is_refused(fresh_containers: BlobServiceClient) -> None:
    blob = fresh_containers.get_blob_client(BLOB_CONTAINER, "checked.bin")
    wrong = ContentSettings(content_md5=bytearray(hashlib.md5(b"other bytes").digest()))
    with pytest.raises(HttpResponseError) as refused:
        blob.upload_blob(b"these bytes", content_settings=wrong, validate_content=False)
    assert refused.value.status_code == 400 and "contentMD5 doesn't match" in str(refused.value)
    assert not blob.exists()


def test_a_missing_container_and_blob_are_not_found(fresh_containers: BlobServiceClient) -> None:
    with pytest.raises(ResourceNotFoundError):
        fresh_containers.get_blob_client("no-such-container", "a.txt").download_blob().readall()
    with pytest.raises(ResourceNotFoundError):
        fresh_containers.get_blob_client(BLOB_CONTAINER, "no/such/blob.txt").download_blob().readall()


def test_the_wrapper_names_a_missing_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURITE_BLOB", str(tmp_path / "no-azurite"))
    with pytest.raises(RuntimeError, match=f"azurite is not installed at {tmp_path / 'no-azurite'}"):
        Azurite(tmp_path / "data")


def test_the_wrapper_refuses_a_port_another_server_holds(azurite: Azurite, tmp_path: Path) -> None:
    """Without the check, start() would take the first Azurite's answer on that port for its own."""
    second = Azurite(tmp_path / "second")
    second.port = azurite.port
    with pytest.raises(RuntimeError, match=f"port {azurite.port} on 127.0.0.1 is already in use"):
        second.start()
    assert second.process is None
