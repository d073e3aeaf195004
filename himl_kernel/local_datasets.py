"""Datasets that are folders on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.contracts import DatasetRole
    from himl_kernel.datasets import DatasetConfig
    from himl_kernel.runinfo import RunInfo


class LocalFolderProvider:
    """Uses ``local_folder`` as it is; else ``target_folder`` if it is already there.

    Inside a remote job the local folders of the submitting machine mean
    nothing, so the provider steps aside and lets the backend's provider answer.
    """

    def prepare(
        self, dataset: DatasetConfig, *, role: DatasetRole, run: RunInfo | None, cache_dir: Path
    ) -> Path | None:
        if run is not None and run.is_remote:
            return None
        if dataset.local_folder is not None:
            folder = Path(dataset.local_folder).expanduser().resolve()
            if role == "output":
                folder.mkdir(parents=True, exist_ok=True)
                return folder
            if not folder.exists():
                raise HimlError(f"dataset {dataset.label!r}: local_folder {str(folder)!r} does not exist")
            if not folder.is_dir():
                raise HimlError(f"dataset {dataset.label!r}: local_folder {str(folder)!r} is not a folder")
            return folder
        if dataset.target_folder is not None:
            folder = Path(dataset.target_folder).expanduser().resolve()
            if role == "output":
                folder.mkdir(parents=True, exist_ok=True)
                return folder
            if folder.is_dir() and any(folder.iterdir()):
                return folder
        return None
