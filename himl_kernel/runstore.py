"""The run store: MLflow tracking, a local SQLite store by default.

Where runs live, in order of precedence:

1. an explicit ``tracking_uri`` given to :class:`RunStore`;
2. ``MLFLOW_TRACKING_URI`` in the environment;
3. ``sqlite:///<home>/mlflow.db`` with artifacts under ``<home>/artifacts``,
   where ``<home>`` is ``HIML_HOME`` or ``./himl_runs``.

A run's outputs and logs are its artifacts ``outputs/`` and ``logs/``. When the
artifact store is a local folder, the job writes straight into it; otherwise
the job writes to a staging folder that :meth:`RunStore.finish` uploads.

MLflow is imported only when a store is used, never by ``himl --help``.

A local SQLite store is made whole or not at all, and upgraded only with a
backup beside it (:mod:`himl_kernel.storefile`); an HTTP tracking server is
asked once whether it answers before MLflow is pointed at it, so that a wrong
``MLFLOW_TRACKING_URI`` fails in seconds. Names, params and tags pass through
:func:`himl_kernel.redact.mask_secrets` before they are stored, and a store
that cannot be written (read-only, full disk) is reported in one line; what it
already holds is untouched, as SQLite writes a transaction whole or not at all.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse, urlsplit

from himl_kernel.errors import HimlError
from himl_kernel.redact import mask_secrets, mask_value

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

ENV_HOME = "HIML_HOME"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
OUTPUTS = "outputs"
LOGS = "logs"
TERMINAL = ("FINISHED", "FAILED", "KILLED")
#: How long an HTTP tracking server may take to answer the first question, in seconds.
PROBE_TIMEOUT_S = 5.0
#: MLflow's own HTTP settings, unless the user set them: a server that stops answering fails in about a minute,
#: not after MLflow's default seven retries of two minutes each.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "20", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"}


def himl_home(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get(ENV_HOME) or "himl_runs").resolve()


def default_tracking_uri() -> str:
    explicit = os.environ.get("MLFLOW_TRACKING_URI", "")
    if explicit:
        return explicit
    return f"sqlite:///{himl_home() / 'mlflow.db'}"


def local_path_of(uri: str) -> Path | None:
    """The folder behind a ``file:`` URI (or a plain path), else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(uri)
    return None


@dataclass
class StoredRun:
    """A run as the kernel needs it: ids, folders, status."""

    run_id: str
    experiment: str
    name: str
    status: str
    parent_run_id: str
    artifact_uri: str
    start_time: int | None
    end_time: int | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]

    @property
    def artifact_folder(self) -> Path | None:
        return local_path_of(self.artifact_uri)


def _quiet_mlflow() -> None:
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # It logs each failed statement with its traceback, then raises: the exception is what we report, in one line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    # mlflow draws a tqdm bar on stderr for downloads when tqdm is installed (Lightning brings it)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class RunStore:
    """Create, finish, find and download runs in an MLflow tracking store."""

    def __init__(self, tracking_uri: str = "", home: Path | None = None) -> None:
        self.home = Path(home).resolve() if home is not None else himl_home()
        if tracking_uri:
            self.tracking_uri = tracking_uri
        elif os.environ.get("MLFLOW_TRACKING_URI"):
            self.tracking_uri = os.environ["MLFLOW_TRACKING_URI"]
        else:
            self.tracking_uri = f"sqlite:///{self.home / 'mlflow.db'}"
        self._client: MlflowClient | None = None

    @property
    def is_default_store(self) -> bool:
        return self.tracking_uri == f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def display_uri(self) -> str:
        """The tracking URI as it may be shown: credentials masked."""
        return mask_secrets(self.tracking_uri)

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            from himl_kernel import storefile

            _quiet_mlflow()
            db = storefile.sqlite_path_of(self.tracking_uri)
            if self.is_default_store:
                storefile.make_private_folder(self.home, ENV_HOME)
            scheme = urlsplit(self.tracking_uri).scheme.lower()
            if scheme in ("http", "https"):
                for name, value in HTTP_DEFAULTS.items():
                    os.environ.setdefault(name, value)
                probe_http_store(self.tracking_uri)
            from himl_kernel import heap

            with heap.loading():  # MLflow, SQLAlchemy and alembic load here (and the store's schema check)
                from mlflow.tracking import MlflowClient

                _quiet_mlflow()  # mlflow sets its own logger levels on import
                with self._faults("open"):
                    if db is not None:
                        root = self.home / "artifacts" if self.is_default_store else db.parent / "mlruns"
                        if self.is_default_store:
                            storefile.make_private_folder(root, "the run store's artifact folder")
                        storefile.prepare(db, root)
                    try:
                        self._client = MlflowClient(tracking_uri=self.tracking_uri)
                    except HimlError:
                        raise
                    except Exception as exc:
                        if _fault_of(exc) is not None:
                            raise
                        first = mask_secrets(_first_line(exc))
                        raise HimlError(f"cannot open the run store {self.display_uri}: {first}") from exc
        return self._client

    @contextlib.contextmanager
    def _faults(self, doing: str) -> Iterator[None]:
        """Turn a store that cannot be read or written (full disk, read-only, no answer) into one line."""
        try:
            yield
        except HimlError:
            raise
        except Exception as exc:
            reason = _fault_of(exc)
            if reason is None:
                raise
            where = str(self.home) if self.is_default_store else self.display_uri
            fix = (
                f"free space there or set {ENV_HOME} to another folder"
                if reason.startswith("the disk")
                else f"set {ENV_HOME} to a writable folder"
                if self.is_default_store
                else "check MLFLOW_TRACKING_URI"
            )
            raise HimlError(
                f"cannot {doing} in the run store {where}: {reason} ({mask_secrets(_first_line(exc))}); {fix}; "
                "what the store already holds is unchanged"
            ) from exc

    # -- experiments and runs ------------------------------------------------
    def experiment_id(self, name: str) -> str:
        client = self.client
        existing = client.get_experiment_by_name(name)
        if existing is not None:
            if existing.lifecycle_stage == "deleted":
                client.restore_experiment(existing.experiment_id)
            return str(existing.experiment_id)
        location = (self.home / "artifacts" / name).as_uri() if self.is_default_store else None
        with self._faults("create an experiment"):
            try:
                return str(client.create_experiment(name, artifact_location=location))
            except Exception:
                # another process created it between our lookup and our create
                again = client.get_experiment_by_name(name)
                if again is None:
                    raise
                return str(again.experiment_id)

    def create_run(
        self,
        experiment: str,
        name: str = "",
        *,
        parent_run_id: str = "",
        tags: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> StoredRun:
        all_tags = {key: mask_value(key, str(value)) for key, value in (tags or {}).items()}
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        experiment_id = self.experiment_id(experiment)
        with self._faults("create a run"):
            run = self.client.create_run(experiment_id, tags=all_tags, run_name=mask_secrets(name) or None)
        if params:
            self.log_params(run.info.run_id, params)
        return self.get(run.info.run_id)

    def folders(self, run: StoredRun) -> tuple[Path, Path]:
        """The run's outputs and logs folders, created."""
        base = run.artifact_folder
        if base is None:
            base = self.home / "staging" / run.run_id
        outputs, logs = base / OUTPUTS, base / LOGS
        with self._faults("create the folders of a run"):
            outputs.mkdir(parents=True, exist_ok=True, mode=0o700)
            logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        return outputs, logs

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        """End a run; upload staged outputs and logs when artifacts are remote."""
        run = self.get(run_id)
        with self._faults("end a run"):
            if run.artifact_folder is None:
                staging = self.home / "staging" / run_id
                for sub in (OUTPUTS, LOGS):
                    if (staging / sub).is_dir() and any((staging / sub).iterdir()):
                        self.client.log_artifacts(run_id, str(staging / sub), artifact_path=sub)
                shutil.rmtree(staging, ignore_errors=True)
            self.client.set_terminated(run_id, status=status)

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), _param_value(str(k), v)) for k, v in params.items()]
        with self._faults("record params"):
            for start in range(0, len(items), 100):
                self.client.log_batch(run_id, params=items[start : start + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(str(k), float(v), now, step or 0) for k, v in metrics.items()]
        with self._faults("record metrics"):
            for start in range(0, len(items), 500):
                self.client.log_batch(run_id, metrics=items[start : start + 500])

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        with self._faults("set tags"):
            for key, value in tags.items():
                self.client.set_tag(run_id, key, mask_value(key, str(value)))

    # -- lookups ---------------------------------------------------------------
    def get(self, run_id: str) -> StoredRun:
        if not run_id or not run_id.strip():
            raise HimlError("a run id must not be empty")
        try:
            run = self.client.get_run(run_id)
        except HimlError:
            raise
        except Exception as exc:
            with self._faults("read"):
                if _fault_of(exc) is not None:
                    raise
            raise HimlError(f"unknown run id {run_id!r} in the run store {self.display_uri}") from None
        return self._stored(run)

    def exists(self, run_id: str) -> bool:
        try:
            self.get(run_id)
        except HimlError:
            return False
        return True

    def _stored(self, run: Run) -> StoredRun:
        experiment = self.client.get_experiment(run.info.experiment_id)
        tags = dict(run.data.tags)
        return StoredRun(
            run_id=run.info.run_id,
            experiment=experiment.name if experiment else run.info.experiment_id,
            name=run.info.run_name or tags.get(RUN_NAME_TAG, ""),
            status=run.info.status,
            parent_run_id=tags.get(PARENT_TAG, ""),
            artifact_uri=run.info.artifact_uri or "",
            start_time=run.info.start_time,
            end_time=run.info.end_time,
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            tags=tags,
        )

    def list_runs(self, experiment: str = "", max_results: int = 50, filter_string: str = "") -> list[StoredRun]:
        client = self.client
        if experiment:
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                names = [e.name for e in client.search_experiments()]
                from himl_kernel.errors import UnknownNameError

                raise UnknownNameError("experiment", experiment, names)
            ids = [exp.experiment_id]
        else:
            ids = [e.experiment_id for e in client.search_experiments()]
        if not ids:
            return []
        with self._faults("list runs"):
            runs = client.search_runs(
                ids, filter_string=filter_string, max_results=max_results, order_by=["attributes.start_time DESC"]
            )
        return [self._stored(r) for r in runs]

    def children(self, parent_run_id: str) -> list[StoredRun]:
        parent = self.get(parent_run_id)
        exp = self.client.get_experiment_by_name(parent.experiment)
        assert exp is not None
        runs = self.client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
            max_results=10_000,
            order_by=["attributes.start_time ASC"],
        )
        return [self._stored(r) for r in runs]

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]

    def artifact(self, run_id: str, path: str, dest: Path | None = None) -> Path:
        """A local copy (or, for local stores, the file itself) of one artifact."""
        run = self.get(run_id)
        path = path.strip("/")
        base = run.artifact_folder
        if base is not None and dest is None:
            candidate = base / path
            if not candidate.exists():
                raise HimlError(f"run {run_id} has no file {path!r} in its artifacts")
            return candidate
        return self.download(run_id, path, dest or (self.home / "downloads" / run_id))

    def download(self, run_id: str, path: str, dest: Path) -> Path:
        """Copy artifacts (a file or a folder; empty path: all) into ``dest``."""
        run = self.get(run_id)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        from mlflow.artifacts import download_artifacts

        try:
            local = download_artifacts(
                run_id=run.run_id,
                artifact_path=path.strip("/") or None,
                dst_path=str(dest),
                tracking_uri=self.tracking_uri,
            )
        except Exception as exc:
            raise HimlError(f"run {run_id} has no artifact {path!r}: {_first_line(exc)}") from exc
        return Path(local)


def _param_value(name: str, value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    return mask_value(name, text)[:6000]


# What a failed store operation's message says, and what it means for the user: the disk, the permissions, the server.
_FAULT_WORDS = (
    ("database or disk is full", "the disk is full"),
    ("disk i/o error", "the disk refused a write (full, or failing)"),
    ("file too large", "the disk is full (no room for the file to grow)"),
    ("no space left", "the disk is full"),
    ("quota exceeded", "the disk is full (quota exceeded)"),
    ("readonly database", "it is read-only"),
    ("read-only file system", "it is on a read-only file system"),
    ("unable to open database file", "the store's file cannot be opened or created (read-only or missing folder)"),
    ("permission denied", "permission denied"),
    ("database is locked", "another process holds it locked"),
    ("max retries exceeded", "the tracking server does not answer"),
    ("connection refused", "the tracking server refuses connections"),
    ("read timed out", "the tracking server does not answer"),
)
_FAULT_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "the disk is full (no room for the file to grow)",
    errno.EDQUOT: "the disk is full (quota exceeded)",
    errno.EROFS: "it is on a read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def _fault_of(exc: BaseException) -> str | None:
    """What is wrong with the store's disk, permissions or server, when ``exc`` says so; else None (a bug)."""
    seen: BaseException | None = exc
    for _ in range(5):  # the SQLite error is often the cause of MLflow's or SQLAlchemy's
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in _FAULT_ERRNOS:
            return _FAULT_ERRNOS[seen.errno]
        text = str(seen).lower()
        for words, reason in _FAULT_WORDS:
            if words in text:
                return reason
        seen = seen.__cause__ or seen.__context__
    return None


def probe_http_store(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise a one-line error unless the HTTP(S) server of ``uri`` answers within ``timeout`` seconds.

    Any answer will do (an error page, a refused TLS certificate): the point is
    that something listens and replies, so that MLflow's own retries are for
    servers that are there. No credentials are sent.
    """
    import http.client
    import ssl

    parts = urlsplit(uri)
    secure = parts.scheme.lower() == "https"
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError as exc:
        raise HimlError(f"MLFLOW_TRACKING_URI={mask_secrets(uri)} has a bad port: {exc}") from exc
    connection: http.client.HTTPConnection
    if secure:
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl._create_unverified_context())
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/")
        connection.getresponse().close()
    except ssl.SSLError:
        return  # it speaks TLS: it answers
    except http.client.HTTPException:
        return  # it answered, with something that is not HTTP/1.1: MLflow will say more
    except OSError as exc:
        what = "did not answer within" if isinstance(exc, TimeoutError) else f"cannot be reached ({exc})"
        wait = f" {timeout:g} s" if isinstance(exc, TimeoutError) else ""
        raise HimlError(
            f"the run store {mask_secrets(uri)} {what}{wait}; check MLFLOW_TRACKING_URI (unset it for the local store)"
        ) from exc
    finally:
        connection.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
