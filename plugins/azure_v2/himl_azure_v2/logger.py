"""Logger ``azureml``: metrics of a run outside AzureML, sent to a run in the workspace's MLflow store.

Inside an AzureML job nothing extra is needed: the job's RunInfo names the
workspace's MLflow store and the job's own run, so the kernel's ``mlflow``
logger writes there. Outside AzureML, with this logger selected
(``HIML_LOGGERS=mlflow,azureml``, hi-ml's "log from VM"), a run is created in
the workspace, in the local run's experiment, and receives the same metrics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from himl_azure_v2.workspace import Workspace
    from himl_kernel.runinfo import RunInfo


class WorkspaceRunSink:
    """An MLflow run in the workspace that mirrors a local run."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step or 0) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        if params:
            self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def close(self) -> None:
        self.client.set_terminated(self.run_id, "FINISHED")


def workspace_sink(run: RunInfo, workspace: Workspace | None = None) -> WorkspaceRunSink | None:
    """The sink for ``run``; None inside AzureML, where the ``mlflow`` logger already writes to the job's run."""
    if run.backend == "azureml":
        return None
    from mlflow.tracking import MlflowClient

    from himl_azure_v2.workspace import Workspace
    from himl_kernel.runstore import RunStore

    ws = workspace or Workspace.from_config()
    uri = str(ws.client.workspaces.get(ws.config.workspace_name).mlflow_tracking_uri)
    experiment = "himl"
    with contextlib.suppress(Exception):  # the local run store may not know the run (a RunInfo made by hand)
        experiment = RunStore(tracking_uri=run.tracking_uri).get(run.run_id).experiment or experiment
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    created = client.create_run(experiment_id, tags={"himl.local_run_id": run.run_id, "himl.backend": run.backend})
    return WorkspaceRunSink(client, created.info.run_id)
