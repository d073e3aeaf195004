"""A stand-in for the AzureML control plane, at the SDK boundary.

:class:`ControlPlane` replaces the operations objects of ``azure.ai.ml.MLClient``
(``jobs``, ``environments``, ``compute``, ``datastores``, ``data``,
``workspaces``). Everything above them is the real SDK and our real code. It
records what the SDK would send (``_to_rest_object()`` is the request body the
SDK builds) and answers with canned descriptions made of real SDK entities.
Blob traffic is not faked: the canned datastores point at Azurite.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from azure.ai.ml.entities import (
    AccountKeyConfiguration,
    AmlCompute,
    AzureBlobDatastore,
    Data,
    Environment,
    Job,
    Workspace,
)
from azure.core.exceptions import ResourceNotFoundError

#: Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
BLOB_CONTAINER = "azureml-blobstore-test"
ARTIFACT_CONTAINER = "azureml-artifacts-test"


def _plain(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))


@dataclass
class Recorded:
    """One submitted job: the REST body, the YAML-shaped dict, and the SDK object."""

    name: str
    rest: dict[str, Any]
    as_dict: dict[str, Any]
    job: Job


class FakeJobs:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.counter = itertools.count(1)

    def create_or_update(self, job: Any, **kwargs: Any) -> Job:
        if hasattr(job, "_to_job"):
            job = job._to_job()
        rest = job._to_rest_object()
        name = f"himl_test_job_{next(self.counter)}"
        self.plane.submitted.append(Recorded(name, rest.as_dict(), _plain(job._to_dict()), job))
        rest.name = name
        rest.id = f"{self.plane.workspace_id}/jobs/{name}"
        rest.properties.status = "Queued"
        created = Job._from_rest_object(rest)
        self.plane.jobs_by_name[name] = created
        return created

    def get(self, name: str) -> Any:
        if name in self.plane.jobs_by_name:
            return self.plane.jobs_by_name[name]
        raise ResourceNotFoundError(f"job {name} not found")

    def stream(self, name: str) -> None:
        self.plane.streamed.append(name)
        self.get(name)


class FakeEnvironments:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Environment:
        key = f"{name}:{version}"
        if key not in self.plane.environments:
            raise ResourceNotFoundError(f"environment {key} not found")
        return self.plane.environments[key]

    def create_or_update(self, environment: Environment) -> Environment:
        self.plane.registered_environments.append(_plain(environment._to_dict()))
        self.plane.environments[f"{environment.name}:{environment.version}"] = environment
        return environment


class FakeCompute:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def get(self, name: str) -> AmlCompute:
        for compute in self.plane.clusters:
            if compute.name == name:
                return compute
        raise ResourceNotFoundError(f"compute {name} not found")

    def list(self) -> list[AmlCompute]:
        return list(self.plane.clusters)


class FakeDatastores:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def get(self, name: str, include_secrets: bool = False) -> AzureBlobDatastore:
        for store in self.plane.datastores:
            if store.name == name:
                return store
        raise ResourceNotFoundError(f"datastore {name} not found")

    def get_default(self, include_secrets: bool = False) -> AzureBlobDatastore:
        return self.plane.datastores[0]


class FakeData:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Data:
        versions = [d for d in self.plane.data if d.name == name]
        if version is not None:
            versions = [d for d in versions if str(d.version) == str(version)]
        if not versions:
            raise ResourceNotFoundError(f"data {name}:{version or label} not found")
        return max(versions, key=lambda d: int(d.version or 0))

    def list(self, name: str | None = None) -> list[Data]:
        return [d for d in self.plane.data if name is None or d.name == name]

    def create_or_update(self, data: Data) -> Data:
        self.plane.created_data.append(_plain(data._to_dict()))
        self.plane.data.append(data)
        return data


class FakeWorkspaces:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def get(self, name: str | None = None, **kwargs: Any) -> Workspace:
        return Workspace(name=name or "ws", mlflow_tracking_uri=self.plane.mlflow_tracking_uri)


@dataclass
class ControlPlane:
    """Canned workspace state, and what was sent to it."""

    subscription: str = "00000000-0000-0000-0000-000000000001"
    resource_group: str = "himl-rg"
    workspace: str = "himl-ws"
    clusters: list[AmlCompute] = field(default_factory=list)
    datastores: list[AzureBlobDatastore] = field(default_factory=list)
    data: list[Data] = field(default_factory=list)
    environments: dict[str, Environment] = field(default_factory=dict)
    jobs_by_name: dict[str, Any] = field(default_factory=dict)
    mlflow_tracking_uri: str = ""
    submitted: list[Recorded] = field(default_factory=list)
    registered_environments: list[dict[str, Any]] = field(default_factory=list)
    created_data: list[dict[str, Any]] = field(default_factory=list)
    streamed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clusters = self.clusters or [
            AmlCompute(name="gpu-nc24", size="STANDARD_NC24", max_instances=4),
            AmlCompute(name="cpu-small", size="STANDARD_D2_V2", max_instances=2),
        ]
        key = AccountKeyConfiguration(account_key=AZURITE_KEY)
        self.datastores = self.datastores or [
            AzureBlobDatastore(
                name="workspaceblobstore", account_name=AZURITE_ACCOUNT, container_name=BLOB_CONTAINER, credentials=key
            ),
            AzureBlobDatastore(
                name="workspaceartifactstore",
                account_name=AZURITE_ACCOUNT,
                container_name=ARTIFACT_CONTAINER,
                credentials=key,
            ),
        ]

    @property
    def workspace_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace}"
        )

    def config_json(self) -> str:
        return json.dumps(
            {
                "subscription_id": self.subscription,
                "resource_group": self.resource_group,
                "workspace_name": self.workspace,
            }
        )

    def operations(self) -> dict[str, Any]:
        """MLClient property name -> the fake operations object."""
        return {
            "jobs": FakeJobs(self),
            "environments": FakeEnvironments(self),
            "compute": FakeCompute(self),
            "datastores": FakeDatastores(self),
            "data": FakeData(self),
            "workspaces": FakeWorkspaces(self),
        }
