"""A stand-in for the AzureML control plane, at the SDK boundary.

:class:`ControlPlane` replaces the operations objects of ``azure.ai.ml.MLClient``
(``jobs``, ``environments``, ``compute``, ``datastores``, ``data``,
``workspaces``). Everything above them is the real SDK and our real code. It
records what the SDK would send (``_to_rest_object()`` is the request body the
SDK builds) and answers with canned descriptions made of real SDK entities.
Blob traffic is not faked: the canned datastores point at Azurite.

Like the service, it refuses a job it could not run, with an HTTP 400 error
(:class:`azure.core.exceptions.HttpResponseError`): no compute or one the
workspace lacks (this workspace has no serverless compute), an environment that
was never registered, an empty command, a data asset that does not exist, a
placeholder (``${{inputs.X}}``, ``${{search_space.X}}``) that names nothing, or
a sweep without an objective or a sampling algorithm. A submitted job stays
``Queued`` until its logs are streamed; streaming ends it with the status in
``ControlPlane.outcome``, and, as the SDK's ``jobs.stream`` does, raises
``JobException`` when that status is ``Failed``.
"""

from __future__ import annotations

import itertools
import json
import re
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
from azure.ai.ml.exceptions import ErrorTarget, JobException
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

#: Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
BLOB_CONTAINER = "azureml-blobstore-test"
ARTIFACT_CONTAINER = "azureml-artifacts-test"


def _plain(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))


#: The job types this stand-in knows how to check (the ones himl submits).
JOB_TYPES = ("Command", "Sweep")
_PLACEHOLDER = re.compile(r"\$\{\{\s*(inputs|outputs|search_space)\.([A-Za-z0-9_]+)\s*\}\}")
_ASSET = re.compile(r"^azureml:(?P<name>[^:@/]+)(?::(?P<version>[^:@/]+)|@(?P<label>[^:@/]+))?$")


def rejected(reason: str) -> HttpResponseError:
    """What the service answers to a request it refuses: HTTP 400, a UserError with the reason."""
    error = HttpResponseError(message=f"(UserError) {reason}")
    error.status_code = 400
    return error


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
        if not isinstance(job, Job):
            raise TypeError(f"jobs.create_or_update takes an azure.ai.ml Job, not {type(job).__name__}")
        rest = job._to_rest_object()
        body = rest.as_dict()
        self.plane.check_job(body)
        name = f"himl_test_job_{next(self.counter)}"
        self.plane.submitted.append(Recorded(name, body, _plain(job._to_dict()), job))
        rest.name = name
        rest.id = f"{self.plane.workspace_id}/jobs/{name}"
        rest.properties.status = "Queued"
        self.plane.rest_by_name[name] = rest
        created = Job._from_rest_object(rest)
        self.plane.jobs_by_name[name] = created
        return created

    def get(self, name: str) -> Any:
        if name in self.plane.jobs_by_name:
            return self.plane.jobs_by_name[name]
        raise ResourceNotFoundError(f"job {name} not found")

    def stream(self, name: str) -> None:
        """The job runs to its end while its logs stream: its status becomes ``plane.outcome``."""
        self.get(name)
        self.plane.streamed.append(name)
        rest = self.plane.rest_by_name.get(name)
        if rest is None:  # a job planted by a test, not submitted here: nothing to run
            return
        rest.properties.status = self.plane.outcome
        self.plane.jobs_by_name[name] = Job._from_rest_object(rest)
        if self.plane.outcome == "Failed":
            raise JobException(
                message=f"Exception : job {name} failed",
                no_personal_data_message="Exception raised on failed job.",
                target=ErrorTarget.JOB,
            )


class FakeEnvironments:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Environment:
        if label is not None:  # the service knows one label, ``latest``: the highest version
            if label != "latest":
                raise ResourceNotFoundError(f"environment {name}@{label} not found")
            versions = [env for key, env in self.plane.environments.items() if key.split(":")[0] == name]
            if not versions:
                raise ResourceNotFoundError(f"environment {name}@latest not found")
            return max(versions, key=lambda env: int(env.version or 0))
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
    rest_by_name: dict[str, Any] = field(default_factory=dict)
    #: The status a submitted job ends with once its logs are streamed.
    outcome: str = "Completed"
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

    def check_job(self, body: dict[str, Any]) -> None:
        """Refuse, as the service would, a job request it could not run (see the module docstring)."""
        properties = body.get("properties") or {}
        kind = properties.get("jobType")
        if kind not in JOB_TYPES:
            raise rejected(f"jobType {kind!r} is not one of {', '.join(JOB_TYPES)}")
        compute = properties.get("computeId")
        if not compute:
            raise rejected(f"the job names no compute, and workspace {self.workspace!r} has no serverless compute")
        known = sorted(str(c.name) for c in self.clusters)
        if compute.rsplit("/", 1)[-1] not in known:
            raise rejected(f"compute {compute!r} does not exist in workspace {self.workspace!r}")
        inputs = properties.get("inputs") or {}
        outputs = properties.get("outputs") or {}
        for key, value in inputs.items():
            self._check_input(key, value)
        if kind == "Command":
            self._check_command(properties, inputs, outputs, {})
        else:
            for part in ("objective", "samplingAlgorithm", "searchSpace", "trial"):
                if not properties.get(part):
                    raise rejected(f"a sweep job needs {part}")
            if not properties["objective"].get("primaryMetric"):
                raise rejected("a sweep job's objective needs a primaryMetric")
            self._check_command(properties["trial"], inputs, outputs, properties["searchSpace"])

    def _check_command(
        self, part: dict[str, Any], inputs: dict[str, Any], outputs: dict[str, Any], space: dict[str, Any]
    ) -> None:
        command = str(part.get("command") or "").strip()
        if not command:
            raise rejected("the job's command is empty")
        names = {"inputs": inputs, "outputs": outputs, "search_space": space}
        for group, key in _PLACEHOLDER.findall(command):
            if key not in names[group]:
                raise rejected(f"the command refers to {group}.{key}, which the job does not define")
        environment = str(part.get("environmentId") or "")
        if not environment:
            raise rejected("the job names no environment")
        match = _ASSET.match(environment)
        if match is None:
            raise rejected(f"environment {environment!r} is not an azureml:NAME:VERSION reference")
        if match["version"] and f"{match['name']}:{match['version']}" not in self.environments:
            raise rejected(f"environment {environment!r} is not registered in workspace {self.workspace!r}")
        if match["label"] and not any(key.startswith(f"{match['name']}:") for key in self.environments):
            raise rejected(f"environment {environment!r} is not registered in workspace {self.workspace!r}")

    def _check_input(self, key: str, value: dict[str, Any]) -> None:
        uri = str(value.get("uri") or "")
        match = _ASSET.match(uri)
        if not uri.startswith("azureml:") or uri.startswith("azureml://"):
            return  # a path on a datastore: the service does not look inside it at submission
        if match is None:
            raise rejected(f"input {key}: {uri!r} is not an azureml:NAME:VERSION or azureml:NAME@LABEL reference")
        versions = [str(d.version) for d in self.data if d.name == match["name"]]
        if not versions or (match["version"] and match["version"] not in versions):
            raise rejected(f"input {key}: data asset {uri[len('azureml:') :]!r} does not exist")

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
