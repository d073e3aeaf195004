"""hi-ml's ``AzureMLLogger``: a Lightning logger writing to the current run, or to a run of its own.

In hi-ml it writes to the AzureML run the code runs in, and, with
``enable_logging_outside_azure_ml=True``, creates a run in experiment
``experiment_name`` when the code runs on a VM. In himl every run is an
MLflow run (the workspace's store in AzureML, the local store here), so:

- inside a himl run (a job of any backend, ``himl run``, or after
  ``submit_if_needed``) it writes to that run's sinks, as the runner's own
  logger does; each (metric, step) is stored once, so both may be attached;
- outside one, with ``enable_logging_outside_azure_ml=True``, it creates a run
  in the run store (``MLFLOW_TRACKING_URI``, else the local store), prints
  ``Writing metrics to run RUN_ID in experiment NAME.`` and where to follow it,
  and ends the run when the Trainer finalizes its loggers;
- outside one, without it, it drops what it is given, and says so once.
"""

from __future__ import annotations

import atexit
import sys
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

from himl_kernel.distributed import is_global_rank_zero
from himl_kernel.errors import HimlError
from himl_kernel.lightning.flavour import EitherPackage
from himl_kernel.lightning.loggers import RunLogger
from himl_kernel.runinfo import RunInfo

if TYPE_CHECKING:
    from himl_kernel.current import ActiveRun
    from himl_kernel.runstore import RunStore, StoredRun

#: hi-ml's experiment for runs the logger creates outside AzureML.
DEFAULT_EXPERIMENT = "azureml_logger"


def run_url(store: RunStore, run: StoredRun) -> str:
    """Where a person can follow ``run``: the tracking server's page, AzureML studio, or the run's folder."""
    uri = store.tracking_uri
    scheme = urlsplit(uri).scheme
    if scheme in ("http", "https"):
        experiment_id = store.client.get_run(run.run_id).info.experiment_id
        return f"{store.display_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run.run_id}"
    if scheme == "azureml":
        return f"https://ml.azure.com/runs/{run.run_id}"
    folder = run.artifact_folder
    return str(folder) if folder is not None else store.display_uri


def _upload_snapshot(store: RunStore, run_id: str, folder: Path) -> int:
    """Store the files of ``folder`` (its .amlignore or .gitignore rules applied) as the run's ``snapshot/``."""
    from himl_kernel.snapshot import Snapshot

    snapshot = Snapshot(folder)
    count = 0
    for relative in snapshot.files():
        parent = relative.parent.as_posix()
        where = "snapshot" if parent == "." else f"snapshot/{parent}"
        store.client.log_artifact(run_id, str(snapshot.root / relative), artifact_path=where)
        count += 1
    return count


class AzureMLLogger(EitherPackage, RunLogger):
    """A Lightning logger for the current himl run, or for a run it creates (hi-ml's ``AzureMLLogger``).

    Args:
        enable_logging_outside_azure_ml: outside a run, create one and write to it
            (False: drop the metrics).
        experiment_name: the experiment of a run created outside a run.
        run: the run to write to (a RunInfo, or the id of a run in the run
            store); default: the current run.
        run_name: the name of a run created outside a run.
        snapshot_directory: a folder stored with a created run as its
            ``snapshot/`` artifacts (``.amlignore`` rules applied); inside a
            run it has nothing to do, as in hi-ml (a job's snapshot is its own).
    """

    def __init__(
        self,
        enable_logging_outside_azure_ml: bool | None = False,
        experiment_name: str = DEFAULT_EXPERIMENT,
        run: RunInfo | str | None = None,
        run_name: str | None = None,
        snapshot_directory: str | Path | None = None,
    ) -> None:
        from himl_kernel.current import current_run

        self.enable_logging_outside_azure_ml = bool(enable_logging_outside_azure_ml)
        self.experiment_name = experiment_name
        self.has_user_provided_run = run is not None
        self._owned: ActiveRun | None = None
        self._store: RunStore | None = None
        self._finished = False
        info = _given_run(run) if run is not None else current_run() or RunInfo.from_environ(_environ())
        if info is None and self.enable_logging_outside_azure_ml and is_global_rank_zero():
            info = self._create_run(run_name, snapshot_directory)
        elif info is None:
            print(
                "himl: AzureMLLogger: no run is active and enable_logging_outside_azure_ml is False: "
                "its metrics are not stored",
                file=sys.stderr,
            )
        self.is_running_in_azure_ml = info is not None and info.is_remote
        self.enabled = info is not None
        self._info = info
        super().__init__(info or _nowhere(), tensorboard=False)
        if info is not None and self._owned is None:
            self._make_current(info)

    def _make_current(self, info: RunInfo) -> None:
        from himl_kernel.current import activate, current_run

        here = current_run()
        if here is None or here.run_id != info.run_id:
            self._owned = activate(info)

    def _create_run(self, run_name: str | None, snapshot_directory: str | Path | None) -> RunInfo:
        from himl_kernel.current import activate
        from himl_kernel.runstore import RunStore

        store = RunStore()
        stored = store.create_run(
            self.experiment_name, run_name or "", tags={"himl.backend": "local", "himl.entry": "AzureMLLogger"}
        )
        outputs, logs = store.folders(stored)
        info = RunInfo(
            run_id=stored.run_id,
            backend="local",
            output_folder=outputs,
            logs_folder=logs,
            is_remote=False,
            tracking_uri=store.tracking_uri,
        )
        if snapshot_directory is not None:
            folder = Path(snapshot_directory)
            if not folder.is_dir():
                store.finish(stored.run_id, "FAILED")
                raise HimlError(f"AzureMLLogger: snapshot_directory {str(folder)!r} is not a folder")
            _upload_snapshot(store, stored.run_id, folder)
        self._store = store
        self._owned = activate(info)
        print(f"Writing metrics to run {stored.run_id} in experiment {self.experiment_name}.", flush=True)
        print(f"To check progress, visit this URL: {run_url(store, stored)}", flush=True)
        atexit.register(self._end, "FAILED")  # a process that never reaches finalize() still ends the run
        return info

    @property
    def run_info_or_none(self) -> RunInfo | None:
        """The run written to, or None when the logger drops what it is given."""
        return self._info

    @property
    @override
    def version(self) -> str:
        return self._info.run_id if self._info is not None else ""

    @property
    @override
    def save_dir(self) -> str:
        return str(self._info.logs_folder) if self._info is not None else ""

    @override
    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.enabled:
            super().log_metrics(metrics, step)

    @override
    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        if self.enabled:
            super().log_hyperparams(params, *args, **kwargs)

    @override
    @rank_zero_only
    def finalize(self, status: str) -> None:
        if not self.enabled:
            return
        super().finalize(status)
        self._end("FAILED" if status == "failed" else "FINISHED")

    def _end(self, status: str) -> None:
        """Stop making a run of our own current, and end it in the store when we created it."""
        if self._finished:
            return
        self._finished = True
        from himl_kernel.current import deactivate

        if self._owned is not None:
            deactivate(self._owned)
        if self._store is not None and self._info is not None:
            self._store.finish(self._info.run_id, status)


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def _given_run(run: RunInfo | str) -> RunInfo:
    """``run`` as a RunInfo: as given, or the stored run of that id (its folders in the run store)."""
    if isinstance(run, RunInfo):
        return run
    from himl_kernel.runstore import RunStore

    store = RunStore()
    stored = store.get(run)  # an unknown id is one line from the store
    outputs, logs = store.folders(stored)
    return RunInfo(
        run_id=stored.run_id, backend="local", output_folder=outputs, logs_folder=logs, tracking_uri=store.tracking_uri
    )


def _nowhere() -> RunInfo:
    """The RunInfo a logger that drops everything carries, so that RunLogger's own fields exist."""
    return RunInfo(run_id="", backend="none", output_folder=Path("outputs"), logs_folder=Path("logs"))
