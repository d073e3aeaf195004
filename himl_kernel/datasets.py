"""Dataset configuration, with the meaning hi-ml gives each field."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from himl_kernel.errors import HimlError


@dataclass
class DatasetConfig:
    """One dataset a job reads or writes.

    Attributes:
        name: the dataset's name in its datastore (an AzureML data asset name,
            or a folder name under the datastore).
        datastore: the datastore holding it; empty means the workspace default.
        version: a pinned version; ``None`` means the latest.
        use_mounting: mount the data instead of downloading it (inputs), or
            write through a mount instead of uploading at the end (outputs).
        target_folder: where the data should appear inside the job; for a
            local run without ``local_folder``, where it is downloaded to.
        local_folder: a folder on this machine that already holds the data; a
            local run uses it as it is, nothing is downloaded.
        overwrite_existing: for outputs, whether to replace what is already
            stored under that name.
    """

    name: str = ""
    datastore: str = ""
    version: int | str | None = None
    use_mounting: bool | None = None
    target_folder: Path | None = None
    local_folder: Path | None = None
    overwrite_existing: bool = True

    def __post_init__(self) -> None:
        if self.target_folder is not None:
            self.target_folder = Path(self.target_folder)
        if self.local_folder is not None:
            self.local_folder = Path(self.local_folder)
        if not self.name and self.local_folder is None:
            raise HimlError("a DatasetConfig needs a name, a local_folder, or both")
        if self.target_folder is not None and str(self.target_folder) in ("", "."):
            raise HimlError(
                f"dataset {self.label!r}: target_folder must be a folder path, got {str(self.target_folder)!r}"
            )

    @property
    def label(self) -> str:
        """How the dataset is named in messages."""
        return self.name or str(self.local_folder)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("target_folder", "local_folder"):
            if data[key] is not None:
                data[key] = str(data[key])
        return data

    @classmethod
    def from_value(
        cls, value: DatasetConfig | str | Path | dict[str, Any], default_datastore: str = ""
    ) -> DatasetConfig:
        """Accept what hi-ml accepts: a config, a dataset name, or a dict of fields."""
        if isinstance(value, DatasetConfig):
            if not value.datastore and default_datastore:
                value.datastore = default_datastore
            return value
        if isinstance(value, Path):
            return cls(local_folder=value, name=value.name)
        if isinstance(value, str):
            if not value.strip():
                raise HimlError("a dataset name must not be empty")
            return cls(name=value, datastore=default_datastore)
        if isinstance(value, dict):
            known = set(cls.__dataclass_fields__)
            unknown = sorted(set(value) - known)
            if unknown:
                raise HimlError(f"dataset fields {unknown} are not known; expected some of {sorted(known)}")
            merged = {"datastore": default_datastore, **value}
            return cls(**merged)
        raise HimlError(f"a dataset must be a DatasetConfig, a name or a dict, got {type(value).__name__}")
