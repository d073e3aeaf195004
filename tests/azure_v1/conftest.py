"""Fixtures for the SDK v1 plugin: the v1 control-plane stand-in, its login, a workspace folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.azure_v1.control_plane_v1 import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    V1ControlPlane,
    fake_authentication,
)


@pytest.fixture
def v1_plane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[V1ControlPlane]:
    """The stand-in, started; azureml-core logs in with its fixed token, and keeps its caches under tmp_path."""
    import himl_azure_v1.workspace
    from azureml._base_sdk_common.service_discovery import CachedServiceDiscovery

    monkeypatch.setenv("HOME", str(tmp_path / "user"))  # the SDK's snapshot cache and config stay out of ~
    # the discovery cache's path is fixed when azureml-core is imported: point it at this test's folder
    monkeypatch.setattr(CachedServiceDiscovery.__init__, "__defaults__", (str(tmp_path / "user" / ".discovery"),))
    plane = V1ControlPlane()
    plane.start()
    monkeypatch.setattr(himl_azure_v1.workspace, "authentication", lambda environ=None: fake_authentication(plane))
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def v1_workspace_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, v1_plane: V1ControlPlane) -> Path:
    """The current folder: a project with the stand-in workspace's config.json."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("HIML_HOME", str(tmp_path / "himl-home"))
    config = {"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP, "workspace_name": WORKSPACE}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder
