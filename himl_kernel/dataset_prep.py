"""Turning a job's DatasetConfigs into folders, through the dataset providers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.contracts import DatasetProvider, DatasetRole
    from himl_kernel.datasets import DatasetConfig
    from himl_kernel.plugins import PluginHost
    from himl_kernel.runinfo import RunInfo


class DatasetUnavailable(HimlError):
    """Raised by a dataset provider for a dataset it knows but cannot make available here (hi-ml's ``None``).

    :func:`prepare_datasets` prints its message as one warning line and gives
    ``None`` for that dataset, as hi-ml does for a dataset named without a
    workspace to fetch it from (scripts then fall back: ``folder or Path(...)``).
    """


def cache_dir() -> Path:
    """Where downloads are kept: ``HIML_CACHE`` or ``~/.cache/himl``."""
    return Path(os.environ.get("HIML_CACHE") or Path.home() / ".cache" / "himl")


def prepare_datasets(
    host: PluginHost,
    datasets: list[DatasetConfig],
    *,
    role: DatasetRole,
    run: RunInfo | None = None,
) -> list[Path | None]:
    """One folder per dataset, asking the providers in priority order.

    An input that no provider can make available is an error naming the
    dataset; an output nobody handles becomes ``None``; so does a dataset a
    provider declares unavailable here (:class:`DatasetUnavailable`), with its
    message as a warning.
    """
    folders: list[Path | None] = []
    entries = host.dataset_providers.by_priority()
    for dataset in datasets:
        found: Path | None = None
        unavailable = False
        for entry in entries:
            obj = entry.load()
            provider: DatasetProvider = obj() if isinstance(obj, type) else obj
            try:
                found = provider.prepare(dataset, role=role, run=run, cache_dir=cache_dir() / "datasets")
            except DatasetUnavailable as exc:
                import sys

                print(f"himl: warning: {exc}", file=sys.stderr)
                unavailable = True
                break
            if found is not None:
                break
        if unavailable:
            folders.append(None)
            continue
        if found is None and role == "input":
            where = f" in datastore {dataset.datastore!r}" if dataset.datastore else ""
            raise HimlError(
                f"input dataset {dataset.label!r}{where} has no local_folder and no installed provider can fetch it; "
                f"give it a local_folder, or install a plugin that reads datastores (himl[azure])"
            )
        folders.append(found)
    return folders
