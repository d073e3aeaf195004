"""A stand-in for the AzureML SDK v1 control plane: a local HTTP server that azureml-core talks to.

azureml-core is real down to its HTTP requests. The tests give it an
authentication object (:class:`FakeAuthentication`, a real ``AbstractAuthentication``
subclass with a fixed token) whose cloud sends Azure Resource Manager calls to
this server, and the workspace the server describes names this server as its
service-discovery URL, so the run-history, execution, snapshot, dataset,
datastore and HyperDrive services are this server too.

Every request is recorded (:attr:`V1ControlPlane.requests`, with its JSON or
multipart body), and the server answers from canned workspace state: the
clusters, datastores (pointing at Azurite) and datasets it knows. Like the
service it refuses what it could not run: a compute target it lacks (404), a
run whose target is not one of its clusters (400).
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.azure_v2.control_plane import AZURITE_ACCOUNT, AZURITE_KEY, BLOB_CONTAINER

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
RESOURCE_GROUP = "himl-rg"
WORKSPACE = "himl-ws"
WORKSPACE_ID = "11111111-aaaa-bbbb-cccc-000000000001"
#: The fixed bearer token of :class:`FakeAuthentication` (a JWT with an expiry far ahead, no signature).
FAKE_TOKEN = (
    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
    "eyJleHAiOjQxMDI0NDQ4MDAsInRpZCI6IjY2NjY2NjY2LTc3NzctODg4OC05OTk5LTAwMDAwMDAwMDAwMCIsIm9pZCI6ImhpbWwtdGVzdCJ9."
)


@dataclass
class Request:
    """One recorded HTTP request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any  # parsed JSON, {part name: parsed JSON or bytes} for multipart, or raw bytes


Handler = Callable[["V1ControlPlane", Request, "re.Match[str]"], tuple[int, Any]]

_SCOPE = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"
)


def _parse_body(content_type: str, raw: bytes) -> Any:
    if not raw:
        return None
    if content_type.startswith("multipart/"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        parts: dict[str, Any] = {}
        for index, part in enumerate(message.iter_parts()):
            name = part.get_param("name", header="content-disposition") or f"part{index}"
            payload = part.get_payload(decode=True) or b""
            try:
                parts[str(name)] = json.loads(payload)
            except ValueError:
                parts[str(name)] = payload
        return parts
    try:
        return json.loads(raw)
    except ValueError:
        return raw


@dataclass
class V1ControlPlane:
    """Canned SDK v1 workspace state behind a local HTTP server, and what was sent to it."""

    clusters: dict[str, str] = field(
        default_factory=lambda: {"gpu-nc24": "STANDARD_NC24", "cpu-small": "STANDARD_D2_V2"}
    )
    #: datastore name -> blob container (in Azurite's development account)
    datastores: dict[str, str] = field(default_factory=lambda: {"workspaceblobstore": BLOB_CONTAINER})
    blob_endpoint: str = "core.windows.net"
    blob_account_url: str = ""
    requests: list[Request] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    snapshots: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    counter: Any = field(default_factory=lambda: itertools.count(1))
    #: The status a submitted run ends with once someone waits for it.
    outcome: str = "Completed"

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            (method, re.compile(pattern + "$"), handler) for method, pattern, handler in ROUTES
        ]

    # -- the server -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "the stand-in is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def scope(self) -> str:
        return (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{WORKSPACE}"
        )

    def start(self) -> None:
        plane = self

        class _Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                plane.answer(self, raw)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answer(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        parts = urlsplit(handler.path)
        request = Request(
            method=handler.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=_parse_body(handler.headers.get("Content-Type", ""), raw),
        )
        with self._lock:
            self.requests.append(request)
        status, payload = 404, {"error": {"code": "NotFound", "message": f"no route for {request.method} {parts.path}"}}
        for method, pattern, route in self.routes:
            match = pattern.match(parts.path)
            if match and method == request.method:
                try:
                    status, payload = route(self, request, match)
                except Exception as exc:  # a bug in the stand-in shows as a 500 with its message
                    status, payload = 500, {"error": {"code": "StandInError", "message": repr(exc)}}
                break
        else:
            self.unanswered.append(f"{request.method} {handler.path}")
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header(
            "Content-Type", "application/json" if not isinstance(payload, bytes) else "application/octet-stream"
        )
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    # -- what the tests read ----------------------------------------------------------------------
    def sent(self, method: str, pattern: str) -> list[Request]:
        """The recorded requests whose method is ``method`` and whose path matches ``pattern``."""
        regex = re.compile(pattern)
        return [r for r in self.requests if r.method == method and regex.search(r.path)]

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self.counter)}"

    # -- canned descriptions ----------------------------------------------------------------------
    def workspace_json(self) -> dict[str, Any]:
        group = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers"
        return {
            "id": self.scope,
            "name": WORKSPACE,
            "type": "Microsoft.MachineLearningServices/workspaces",
            "location": "westeurope",
            "identity": {"type": "SystemAssigned"},
            "sku": {"name": "Basic", "tier": "Basic"},
            "properties": {
                "workspaceId": WORKSPACE_ID,
                "friendlyName": WORKSPACE,
                "discoveryUrl": f"{self.url}/discovery",
                "storageAccount": f"{group}/Microsoft.Storage/storageAccounts/{AZURITE_ACCOUNT}",
                "keyVault": f"{group}/Microsoft.KeyVault/vaults/himlkv",
                "applicationInsights": f"{group}/Microsoft.insights/components/himlai",
                "provisioningState": "Succeeded",
                "hbiWorkspace": False,
            },
        }

    def compute_json(self, name: str) -> dict[str, Any]:
        return {
            "id": f"{self.scope}/computes/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/computes",
            "location": "westeurope",
            "tags": {},
            "properties": {
                "computeType": "AmlCompute",
                "provisioningErrors": None,
                "computeLocation": "westeurope",
                "isAttachedCompute": False,
                "provisioningState": "Succeeded",
                "description": None,
                "resourceId": None,
                "createdOn": "2026-01-01T00:00:00Z",
                "modifiedOn": "2026-01-01T00:00:00Z",
                "properties": {
                    "vmSize": self.clusters[name],
                    "vmPriority": "Dedicated",
                    "scaleSettings": {"minNodeCount": 0, "maxNodeCount": 4, "nodeIdleTimeBeforeScaleDown": "PT120S"},
                    "remoteLoginPortPublicAccess": "Disabled",
                    "allocationState": "Steady",
                    "currentNodeCount": 0,
                    "targetNodeCount": 0,
                    "nodeStateCounts": {},
                    "subnet": None,
                },
            },
        }

    def datastore_json(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "dataStoreType": "AzureBlob",
            "hasBeenValidated": True,
            "azureStorageSection": {
                "accountName": AZURITE_ACCOUNT,
                "containerName": self.datastores[name],
                "endpoint": self.blob_endpoint,
                "protocol": "http" if self.blob_account_url else "https",
                "credentialType": "AccountKey",
                "credential": AZURITE_KEY,
                "isSas": False,
                "accountKey": AZURITE_KEY,
            },
        }

    def run_json(self, experiment: str, run_id: str, **extra: Any) -> dict[str, Any]:
        run = self.runs.setdefault(
            run_id,
            {
                "runId": run_id,
                "rootRunId": run_id,
                "runNumber": len(self.runs) + 1,
                "dataContainerId": f"dcid.{run_id}",
                "parentRunId": None,
                "runUuid": str(uuid.uuid4()),
                "experimentId": self.experiments.get(experiment, {}).get("experimentId", str(uuid.uuid4())),
                "status": "NotStarted",
                "tags": {},
                "properties": {},
                "runDefinition": None,
                "target": None,
                "createdUtc": "2026-01-01T00:00:00Z",
            },
        )
        run.update(extra)
        return run


# -- routes -----------------------------------------------------------------------------------------


def _workspace(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    if (match["sub"], match["rg"], match["ws"]) != (SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE):
        return 404, {"error": {"code": "ResourceNotFound", "message": f"workspace {match['ws']} not found"}}
    return 200, plane.workspace_json()


def _discovery(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    services = (
        "api",
        "catalog",
        "experimentation",
        "history",
        "hyperdrive",
        "pipelines",
        "modelmanagement",
        "labeling",
        "studio",
    )
    return 200, {name: plane.url for name in services}


def _compute(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    name = match["name"]
    if name not in plane.clusters:
        return 404, {"error": {"code": "ResourceNotFound", "message": f"compute {name} not found"}}
    return 200, plane.compute_json(name)


def _computes(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    return 200, {"value": [plane.compute_json(name) for name in plane.clusters]}


def _experiment_get(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    if match["exp"] not in plane.experiments:
        return 404, {"error": {"code": "UserError", "message": f"experiment {match['exp']} not found"}}
    return 200, plane.experiments[match["exp"]]


def _experiment_create(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    name = match["exp"]
    plane.experiments.setdefault(
        name, {"experimentId": str(uuid.uuid4()), "name": name, "createdUtc": "2026-01-01T00:00:00Z", "tags": {}}
    )
    return 200, plane.experiments[name]


def _snapshot_latest(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    # a fresh workspace: the latest snapshot is an empty folder, so every file is new
    return 200, {"id": "00000000-0000-0000-0000-000000000000", "root": {}}


def _snapshot_getblob(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    # The SDK uploads each file to the SAS URL answered here, as https://ACCOUNT.blob.SUFFIX, which cannot be
    # pointed at a local server: no upload URLs are handed out, and the snapshot's tree (names and hashes of
    # every file) is recorded from the snapshot request instead.
    return 200, {"fileNodes": []}


def _snapshot_create(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    plane.snapshots[match["id"]] = request.body
    return 200, {"id": match["id"]}


def _start_run(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    definition = request.body or {}
    configuration = definition.get("Configuration") or definition.get("configuration") or {}
    target = configuration.get("target")
    if target not in plane.clusters:
        return 400, {"error": {"code": "UserError", "message": f"compute target {target!r} does not exist"}}
    run_id = request.query["runId"][0]
    plane.run_json(match["exp"], run_id, status="Queued", target=target, runDefinition=configuration, submitted=True)
    return 200, {"runId": run_id}


def _run_of(plane: V1ControlPlane, match: re.Match[str]) -> dict[str, Any]:
    return plane.run_json(match.groupdict().get("exp") or "", match["run"])


def _run_get(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    run = plane.runs.get(match["run"])
    if run is None:
        return 404, {"error": {"code": "UserError", "message": f"run {match['run']} not found"}}
    if run["status"] in ("Queued", "Running", "Starting") and run.get("submitted"):
        run["status"] = plane.outcome  # a submitted run runs to its end once someone waits for it
    return 200, run


def _run_patch(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    run = _run_of(plane, match)
    body = request.body if isinstance(request.body, dict) else {}
    for key, value in body.items():
        if key in ("tags", "properties") and isinstance(value, dict):
            run[key].update(value)
        elif key != "runId" and value is not None:
            run[key] = value
    return 200, run


def hyperdrive_tags(config: dict[str, Any]) -> dict[str, str]:
    """The tags the HyperDrive service puts on a parent run, from which the SDK rebuilds its configuration."""
    tags = {key: json.dumps(config.get(key)) for key in ("generator_config", "primary_metric_config", "policy_config")}
    tags["platform_config"] = json.dumps(config.get("platform_config") or {})
    for key in ("max_total_jobs", "max_concurrent_jobs", "max_duration_minutes"):
        tags[key] = str(config.get(key))
    return {f"_aml_system_{key}": value for key, value in tags.items()}


def _hyperdrive_submit(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    body = request.body or {}
    config = body.get("config") if isinstance(body, dict) else None
    if not isinstance(config, dict):
        return 400, {"error": {"code": "UserError", "message": "a HyperDrive request needs its config.json part"}}
    definition = (config.get("platform_config") or {}).get("Definition") or {}
    target = (definition.get("Overrides") or {}).get("target")
    if target not in plane.clusters:
        return 400, {"error": {"code": "UserError", "message": f"compute target {target!r} does not exist"}}
    experiment = unquote(match["scope"]).rsplit("/", 1)[-1]
    run_id = f"HD_{uuid.uuid4()}"
    tags = hyperdrive_tags(config)
    plane.run_json(experiment, run_id, status="Running", target=target, runType="hyperdrive", submitted=True, tags=tags)
    result = {**config, "platform_config": {**config["platform_config"], "ParentRunId": run_id}, "status": "Running"}
    return 201, {"code": 201, "result": result}


def _run_details(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    status, run = _run_get(plane, request, match)
    if status != 200:
        return status, run
    details = {key: run.get(key) for key in ("runId", "target", "status", "properties", "tags", "runDefinition")}
    return 200, {**details, "logFiles": {}, "warnings": [], "inputDatasets": [], "outputDatasets": []}


def _artifact_prefix(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    prefix = f"{match['origin']}/{match['container']}/{match['path']}"
    names = sorted(name for name in plane.artifacts if name.startswith(prefix))
    value = [
        {"origin": match["origin"], "container": match["container"], "path": name.split("/", 2)[2],
         "contentUri": f"{plane.url}/blob/{name}"}
        for name in names
    ]  # fmt: skip
    return 200, {"value": value, "continuationToken": None}


def _metric_batch(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    if match["run"] not in plane.runs:
        return 404, {"error": {"code": "UserError", "message": f"run {match['run']} not found"}}
    values = (request.body or {}).get("values") if isinstance(request.body, dict) else None
    if not isinstance(values, list):
        return 400, {"error": {"code": "UserError", "message": "a metric batch needs a list of values"}}
    for metric in values:
        plane.metrics.append({"run": match["run"], **metric})
    return 200, {}


def _experiment_by_id(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    for experiment in plane.experiments.values():
        if experiment["experimentId"] == match["id"]:
            return 200, experiment
    return 404, {"error": {"code": "UserError", "message": f"experiment id {match['id']} not found"}}


def _runs_query(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    # the SDK asks for a run's children with an OData filter on the parent run id
    text = json.dumps(request.body) + json.dumps(request.query)
    parent = re.search(r"parentrunid eq '?([A-Za-z0-9_.-]+)", text, re.IGNORECASE)
    runs = [r for r in plane.runs.values() if parent is None or r.get("parentRunId") == parent.group(1)]
    return 200, {"value": runs, "continuationToken": None, "nextLink": None}


def _run_children(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    children = [run for run in plane.runs.values() if run.get("parentRunId") == match["run"]]
    return 200, {"value": children, "continuationToken": None, "nextLink": None}


def _metrics_of(plane: V1ControlPlane, run_id: str) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for metric in plane.metrics:
        if metric["run"] != run_id:
            continue
        entry = merged.setdefault(
            metric["name"],
            {"name": metric["name"], "columns": metric.get("columns") or {}, "value": [],
             "properties": metric.get("properties") or {}, "dataContainerId": f"dcid.{run_id}"},
        )  # fmt: skip
        entry["value"].extend(metric.get("value") or [])
    return merged


def _metric_list(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    value = [
        {"metricKey": {"namespace": None, "name": name}, "columns": entry["columns"]}
        for name, entry in _metrics_of(plane, match["run"]).items()
    ]
    return 200, {"value": value, "continuationToken": None}


def _metric_full(plane: V1ControlPlane, request: Request, match: re.Match[str]) -> tuple[int, Any]:
    name = (request.body or {}).get("metricName") if isinstance(request.body, dict) else None
    metrics = _metrics_of(plane, match["run"])
    if name not in metrics:
        return 404, {"error": {"code": "UserError", "message": f"metric {name!r} not found"}}
    return 200, {**metrics[name], "continuationToken": None}


_HISTORY = r"/history/v1\.0" + _SCOPE
_CONTENT = r"/content/v[12]\.0" + _SCOPE

_EXP = r"(?:/experiments/(?P<exp>[^/]+)|/experimentids/(?P<expid>[^/]+))?"

ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", r"/hyperdrive/v1\.0/(?P<scope>[^/]+)/runs", _hyperdrive_submit),
    ("POST", r"/execution/v1\.0" + _SCOPE + r"/experiments/(?P<exp>[^/]+)/snapshotrun", _start_run),
    ("GET", _HISTORY + _EXP + r"/runs/(?P<run>[^/]+)", _run_get),
    ("PATCH", _HISTORY + _EXP + r"/runs/(?P<run>[^/]+)", _run_patch),
    ("GET", _HISTORY + _EXP + r"/runs/(?P<run>[^/]+)/details", _run_details),
    ("GET", _HISTORY + _EXP + r"/runs/(?P<run>[^/]+)/children", _run_children),
    ("POST", r"/metric/v2\.0" + _SCOPE + r"/runs/(?P<run>[^/]+)/batch", _metric_batch),
    ("POST", r"/metric/v2\.0" + _SCOPE + r"/runs/(?P<run>[^/]+)/list", _metric_list),
    ("POST", r"/metric/v2\.0" + _SCOPE + r"/runs/(?P<run>[^/]+)/full", _metric_full),
    ("GET", _HISTORY + _EXP + r"/runs/(?P<run>[^/]+)/metricsingest/wait", lambda plane, request, match: (200, {})),
    (
        "GET",
        r"/artifact/v2\.0"
        + _SCOPE
        + r"/artifacts/prefix/contentinfo/(?P<origin>[^/]+)/(?P<container>[^/]+)/(?P<path>.+)",
        _artifact_prefix,
    ),
    ("GET", _CONTENT + r"/snapshots/latest/metadata", _snapshot_latest),
    ("POST", _CONTENT + r"/snapshots/getblob", _snapshot_getblob),
    ("POST", _CONTENT + r"/snapshots/(?P<id>[0-9a-f-]+)", _snapshot_create),
    ("GET", _HISTORY + r"/experiments/(?P<exp>[^/]+)", _experiment_get),
    ("GET", _HISTORY + r"/experimentids/(?P<id>[^/]+)", _experiment_by_id),
    ("POST", _HISTORY + _EXP + r"/runs:query", _runs_query),
    ("GET", _HISTORY + _EXP + r"/runs", _runs_query),
    ("POST", _HISTORY + r"/experiments/(?P<exp>[^/]+)", _experiment_create),
    ("GET", _SCOPE, _workspace),
    ("GET", "/discovery", _discovery),
    ("GET", r"(?:/rp/workspaces)?" + _SCOPE + r"/computes/(?P<name>[^/]+)", _compute),
    ("GET", r"(?:/rp/workspaces)?" + _SCOPE + r"/computes", _computes),
]


def fake_authentication(plane: V1ControlPlane) -> Any:
    """A real azureml-core ``AbstractAuthentication`` subclass: a fixed token, ARM at the stand-in."""
    import copy

    from azureml.core.authentication import AbstractAuthentication

    class _Fake(AbstractAuthentication):
        def __init__(self) -> None:
            super().__init__()
            cloud = copy.deepcopy(self._cloud_type)
            cloud.endpoints.resource_manager = plane.url + "/"
            self._cloud_type = cloud

        def _get_arm_token(self) -> str:
            return FAKE_TOKEN

        def _get_graph_token(self) -> str:
            return FAKE_TOKEN

        def _get_azureml_client_token(self) -> str:
            return FAKE_TOKEN

        def _get_all_subscription_ids(self) -> tuple[list[Any], str]:
            from azureml.core.authentication import _SubscriptionInfo as SubscriptionInfo

            return [SubscriptionInfo("himl-test", SUBSCRIPTION)], "66666666-7777-8888-9999-000000000000"

        def _get_workspace(self, subscription_id: str, resource_group: str, name: str) -> None:
            return None

        def _get_arm_end_point(self) -> str:
            return plane.url + "/"

    return _Fake()
