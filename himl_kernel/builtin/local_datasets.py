"""Built-in dataset provider: folders that are already on this machine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from himl_kernel import hookimpl

if TYPE_CHECKING:
    from himl_kernel.contracts import DatasetProvider
    from himl_kernel.registry import Registry


@hookimpl
def himl_register_dataset_providers(registry: Registry[DatasetProvider]) -> None:
    registry.add(
        "local",
        "himl_kernel.local_datasets:LocalFolderProvider",
        "a dataset's local_folder, or its target_folder when it already exists",
        priority=100,
    )
