"""Built-in plugin: checkpoint sources for local paths, run outputs and http(s) URLs.

The sources live in :mod:`himl_kernel.checkpoint_sources` and are registered by
import path, so nothing beyond the kernel is imported until a checkpoint is
resolved (the run source imports MLflow only when asked about a run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from himl_kernel import hookimpl

if TYPE_CHECKING:
    from himl_kernel.contracts import CheckpointSource
    from himl_kernel.registry import Registry

_MODULE = "himl_kernel.checkpoint_sources"


@hookimpl
def himl_register_checkpoint_sources(registry: Registry[CheckpointSource]) -> None:
    """Register ``url`` (tried first), ``run``, then ``path``."""
    registry.add(
        "url",
        f"{_MODULE}:UrlSource",
        "http(s) URL, downloaded once into the cache; '#sha256=<hex>' pins the content",
        priority=30,
        schemes=("http", "https"),
    )
    registry.add(
        "run",
        f"{_MODULE}:RunSource",
        "RUN_ID:path/in/outputs, a file in the outputs of a run in the local run store",
        priority=20,
    )
    registry.add("path", f"{_MODULE}:PathSource", "a checkpoint file on this machine", priority=10)
