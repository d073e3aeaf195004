"""``run_info.run``: hi-ml's Run object, backed by the run's MLflow run.

hi-ml handed scripts an azureml-core ``Run``; with SDK v2 a job's metrics and
files live in the workspace's MLflow store, and outside AzureML in himl's local
run store (also MLflow). :class:`MlflowRun` keeps the methods hi-ml scripts
call on it, with azureml-core's argument names::

    run = run_info.run
    run.log("accuracy", 0.93)
    run.log_list("losses", [0.9, 0.5, 0.3])
    run.upload_file("outputs/report.txt", "report.txt")
    print(run.id, run.get_portal_url())

Names are checked before anything is sent: a metric name or an artifact name
that MLflow would refuse, or that climbs out of the run (``../x``), is a
one-line :class:`~himl_kernel.errors.HimlError`.
"""

from __future__ import annotations

import io
import numbers
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.runinfo import RunInfo
    from himl_kernel.runstore import RunStore

#: The metric names MLflow stores (its own rule): letters, digits, underscores, dashes, dots, spaces, slashes, colons.
_METRIC_NAME = re.compile(r"^[\w\-. /:]{1,250}$")


def _number(name: str, value: Any) -> float:
    """``value`` as a metric value; tensors and numpy scalars through ``item()``."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise HimlError(f"metric {name!r}: {value!r} is not a number (log a number, or use tag() for text)")
    return float(value)


def _artifact_name(name: str) -> PurePosixPath:
    """A run-relative artifact path such as ``outputs/a.txt``; absolute or ``..`` paths are refused."""
    text = str(name).replace("\\", "/").strip()
    path = PurePosixPath(text)
    if not text or path.is_absolute() or ".." in path.parts or text in (".", "/"):
        raise HimlError(f"artifact name {name!r} must be a relative path inside the run, such as 'outputs/file.txt'")
    return path


class MlflowRun:
    """One run in an MLflow store, with the methods of hi-ml's (azureml-core's) ``Run``.

    Args:
        run_id: the MLflow run id (an AzureML job's name is its run id).
        store: the run store holding it.
        portal_url: the run's page; empty for a local run (then the store's location is given).
    """

    def __init__(self, run_id: str, store: RunStore, portal_url: str = "") -> None:
        self._id = run_id
        self._store = store
        self._portal_url = portal_url

    @classmethod
    def for_run_info(cls, info: RunInfo) -> MlflowRun:
        """The run behind a kernel RunInfo: the AzureML job's run inside AzureML, else the local store's run."""
        from himl_kernel.runstore import RunStore

        store = RunStore(info.tracking_uri)
        url = ""
        if info.backend == "azureml":
            from himl_azure_v2.injob import portal_url_from_environ

            url = portal_url_from_environ(info.run_id)
        return cls(info.run_id, store, url)

    # -- identity ------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The run's id (an AzureML job's name, or the local run's MLflow id)."""
        return self._id

    def get_portal_url(self) -> str:
        """The run's page in the AzureML studio; for a local run, its place in the local store."""
        return self._portal_url or f"{self._store.display_uri}#run={self._id}"

    def __repr__(self) -> str:
        return f"MlflowRun(id={self._id!r})"

    # -- metrics -------------------------------------------------------------------
    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log one value of metric ``name`` (at ``step``; azureml-core's ``description`` is not kept by MLflow)."""
        self._store.log_metrics(self._id, {self._metric(name): _number(name, value)}, step=step)

    def log_list(self, name: str, value: Sequence[Any], description: str = "") -> None:
        """Log a list of values of metric ``name``, one step each (0, 1, ...), as azureml-core's list metric."""
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise HimlError(f"metric {name!r}: log_list needs a list of numbers, got {type(value).__name__}")
        metric = self._metric(name)
        for step, item in enumerate(value):
            self._store.log_metrics(self._id, {metric: _number(name, item)}, step=step)

    def log_row(self, name: str, description: str = "", **kwargs: Any) -> None:
        """Log one row of table ``name``: each column is the metric ``name/column``, one step per row."""
        if not kwargs:
            raise HimlError(f"log_row {name!r}: give the row's columns as keywords, such as log_row(name, x=1, y=2)")
        step = self._next_step(f"{self._metric(name)}/{next(iter(kwargs))}")
        values = {f"{self._metric(name)}/{self._metric(k)}": _number(f"{name}/{k}", v) for k, v in kwargs.items()}
        self._store.log_metrics(self._id, values, step=step)

    def log_table(self, name: str, value: Mapping[str, Sequence[Any]], description: str = "") -> None:
        """Log table ``name`` (column -> values of equal length): ``log_row`` once per row."""
        columns = {str(k): list(v) for k, v in value.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise HimlError(f"log_table {name!r}: the columns have different lengths {sorted(lengths)}")
        for row in range(lengths.pop()):
            self.log_row(name, **{k: v[row] for k, v in columns.items()})

    def log_image(self, name: str, path: str | Path | None = None, plot: Any = None, description: str = "") -> None:
        """Keep an image with the run as ``images/<name>.png``: a file, or a matplotlib figure or pyplot module."""
        if (path is None) == (plot is None):
            raise HimlError(f"log_image {name!r}: give exactly one of path= and plot=")
        if path is not None:
            source = Path(path)
            if not source.is_file():
                raise HimlError(f"log_image {name!r}: image file {str(source)!r} does not exist")
            self.upload_file(f"images/{name}{source.suffix or '.png'}", source)
            return
        buffer = io.BytesIO()
        plot.savefig(buffer, format="png")
        self.upload_file(f"images/{name}.png", buffer)

    def get_metrics(self, name: str | None = None) -> dict[str, Any]:
        """Metric name -> its value, or its list of values when it was logged more than once (azureml-core's form)."""
        stored = self._store.get(self._id)
        names = [name] if name is not None else sorted(stored.metrics)
        found: dict[str, Any] = {}
        for key in names:
            history = self._store.metric_history(self._id, key)
            if not history:
                continue
            values = [value for _, value in sorted(history, key=lambda item: item[0])]
            found[key] = values[0] if len(values) == 1 else values
        return found

    # -- tags ----------------------------------------------------------------------
    def tag(self, key: str, value: str | None = None) -> None:
        """Set tag ``key`` (to ``value``, or to an empty text as azureml-core does)."""
        self._store.set_tags(self._id, {str(key): "" if value is None else str(value)})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._store.set_tags(self._id, {str(k): str(v) for k, v in tags.items()})

    def get_tags(self) -> dict[str, str]:
        return dict(self._store.get(self._id).tags)

    # -- files ---------------------------------------------------------------------
    def upload_file(self, name: str, path_or_stream: str | Path | Any, datastore_name: str | None = None) -> None:
        """Keep a file (a path, or a binary stream) with the run as artifact ``name``, e.g. ``outputs/x.txt``."""
        target = _artifact_name(name)
        with tempfile.TemporaryDirectory(prefix="himl-upload-") as scratch:
            staged = Path(scratch) / target.name
            if isinstance(path_or_stream, (str, Path)):
                source = Path(path_or_stream)
                if not source.is_file():
                    raise HimlError(f"upload_file {name!r}: {str(source)!r} is not a file")
                shutil.copyfile(source, staged)
            elif hasattr(path_or_stream, "read"):
                data = path_or_stream.read()
                staged.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
            else:
                raise HimlError(f"upload_file {name!r}: expected a file path or a stream, got {type(path_or_stream)}")
            parent = str(target.parent)
            self._store.client.log_artifact(self._id, str(staged), artifact_path=None if parent == "." else parent)

    def upload_folder(self, name: str, path: str | Path, datastore_name: str | None = None) -> None:
        """Keep every file below folder ``path`` with the run, under artifact path ``name``."""
        target = _artifact_name(name)
        source = Path(path)
        if not source.is_dir():
            raise HimlError(f"upload_folder {name!r}: {str(source)!r} is not a folder")
        self._store.client.log_artifacts(self._id, str(source), artifact_path=str(target))

    def get_file_names(self) -> list[str]:
        """Every artifact path of the run, as azureml-core lists them (``outputs/a.txt``...)."""
        names: list[str] = []
        pending = [""]
        while pending:
            folder = pending.pop()
            for entry in self._store.client.list_artifacts(self._id, folder or None):
                (pending if entry.is_dir else names).append(entry.path)
        return sorted(names)

    def flush(self) -> None:
        """Nothing to do: every call above has been written when it returns."""

    # -- helpers -------------------------------------------------------------------
    @staticmethod
    def _metric(name: str) -> str:
        text = str(name)
        if not _METRIC_NAME.match(text) or ".." in text.split("/"):
            raise HimlError(
                f"metric name {text!r} is not one MLflow accepts: use letters, digits, spaces and _ - . / : only"
            )
        return text

    def _next_step(self, key: str) -> int:
        history = self._store.metric_history(self._id, key)
        return max((step for step, _ in history), default=-1) + 1


class OfflineRun:
    """hi-ml's ``RUN_CONTEXT`` outside any run: metrics and tags are printed, files are not kept (one line says so)."""

    def __init__(self) -> None:
        import uuid

        self._id = f"OfflineRun_{uuid.uuid4()}"

    @property
    def id(self) -> str:
        return self._id

    def get_portal_url(self) -> str:
        return ""

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        at = "" if step is None else f" (step {step})"
        print(f"himl: offline run: {name} = {_number(name, value)}{at}")

    def log_list(self, name: str, value: Sequence[Any], description: str = "") -> None:
        print(f"himl: offline run: {name} = {[_number(name, v) for v in value]}")

    def tag(self, key: str, value: str | None = None) -> None:
        print(f"himl: offline run: tag {key} = {value or ''}")

    def upload_file(self, name: str, path_or_stream: Any, datastore_name: str | None = None) -> None:
        print(f"himl: offline run: {name} is not kept (no run to keep it in)")

    def upload_folder(self, name: str, path: str | Path, datastore_name: str | None = None) -> None:
        print(f"himl: offline run: {name} is not kept (no run to keep it in)")

    def flush(self) -> None:
        """Nothing is buffered."""
