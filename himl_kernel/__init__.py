"""himl: run deep-learning experiments here or in the cloud, through plugins.

A plugin author needs one name from here: ``hookimpl``, the marker for hook
implementations (the hooks are listed in :mod:`himl_kernel.hookspecs`). Script
authors use :func:`submit_if_needed`, :func:`log_metrics` and
:func:`resolve_checkpoint`; these are imported on first use, so importing the
package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("himl")

_LAZY = {
    "DatasetConfig": "himl_kernel.datasets",
    "JobSpec": "himl_kernel.job",
    "RunInfo": "himl_kernel.runinfo",
    "Sweep": "himl_kernel.sweep",
    "Container": "himl_kernel.container",
    "HimlError": "himl_kernel.errors",
    "submit_if_needed": "himl_kernel.submit",
    "log_metrics": "himl_kernel.current",
    "log_metric": "himl_kernel.current",
    "log_params": "himl_kernel.current",
    "resolve_checkpoint": "himl_kernel.checkpoints",
}

__all__ = ["__version__", "hookimpl", *_LAZY]

if TYPE_CHECKING:
    from himl_kernel.checkpoints import resolve_checkpoint
    from himl_kernel.container import Container
    from himl_kernel.current import log_metric, log_metrics, log_params
    from himl_kernel.datasets import DatasetConfig
    from himl_kernel.errors import HimlError
    from himl_kernel.job import JobSpec
    from himl_kernel.runinfo import RunInfo
    from himl_kernel.submit import submit_if_needed
    from himl_kernel.sweep import Sweep


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'himl_kernel' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
