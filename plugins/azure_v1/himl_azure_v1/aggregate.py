"""hi-ml's ``aggregate_hyperdrive_metrics``: one table of what every child run of a HyperDrive run logged.

Each column is a child run, named by the value it received for
``child_run_arg_name`` (``--crossval_index 2`` gives column 2); each row is a
metric. A metric logged once is its value, one logged several times (or with
``log_list``) the list of values, and one logged with ``log_table`` or
``log_row`` a dict of columns, as ``Run.get_metrics`` returns them.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from himl_kernel.errors import HimlError


def child_run_index(details: dict[str, Any], child_run_arg_name: str) -> str | None:
    """The value a child run received for ``--<child_run_arg_name>``, from its run definition's arguments."""
    arguments = [str(a) for a in ((details.get("runDefinition") or {}).get("arguments") or [])]
    flags = {f"--{child_run_arg_name}", f"-{child_run_arg_name}"}
    for position, argument in enumerate(arguments):
        name, _, value = argument.partition("=")
        if name in flags:
            if value:
                return value
            if position + 1 < len(arguments):
                return arguments[position + 1]
    return None


def aggregate_hyperdrive_metrics(
    child_run_arg_name: str,
    run_id: str | None = None,
    run: Any = None,
    keep_metrics: Sequence[str] | None = None,
    aml_workspace: Any = None,
    workspace_config_path: Path | None = None,
) -> Any:
    """A pandas DataFrame of the child runs' metrics (see the module docstring), as hi-ml's.

    Raises:
        HimlError: neither ``run`` nor ``run_id`` is given, the run is not a HyperDrive run, or a
            child run did not receive ``--<child_run_arg_name>``.
    """
    from azureml.core import Run
    from azureml.train.hyperdrive import HyperDriveRun

    pd: Any = importlib.import_module("pandas")  # no type stubs installed; an azureml-core dependency already
    if run is None:
        if not run_id:
            raise HimlError("aggregate_hyperdrive_metrics needs a run or a run_id (a HyperDrive run's id)")
        from himl_azure_v1.workspace import get_workspace

        workspace = aml_workspace if aml_workspace is not None else get_workspace(config_start=workspace_config_path)
        run = Run.get(workspace, run_id)
    if not isinstance(run, HyperDriveRun):
        raise HimlError(f"run {run.id!r} is not a HyperDrive run: aggregate_hyperdrive_metrics reads its children")
    columns: dict[Any, dict[str, Any]] = {}
    for child in run.get_children():
        index = child_run_index(child.get_details(), child_run_arg_name)
        if index is None:
            raise HimlError(f"child run {child.id!r} of {run.id!r} did not receive --{child_run_arg_name}")
        metrics = dict(child.get_metrics())
        if keep_metrics is not None:
            metrics = {name: value for name, value in metrics.items() if name in keep_metrics}
        columns[int(index) if index.lstrip("-").isdigit() else index] = metrics
    frame = pd.DataFrame({key: pd.Series(columns[key], dtype=object) for key in sorted(columns, key=str)})
    return frame[sorted(frame.columns, key=lambda key: (not isinstance(key, int), key))]
