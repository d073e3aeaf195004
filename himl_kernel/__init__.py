"""himl: run deep-learning experiments here or in the cloud, through plugins.

A plugin author needs one name from here: ``hookimpl``, the marker for hook
implementations (the hooks are listed in :mod:`himl_kernel.hookspecs`). Script
authors use :func:`submit_if_needed`, :func:`log_metrics` and
:func:`resolve_checkpoint`; trainer authors (plain PyTorch, Fabric, Hugging
Face) also use the resume and rank services (:func:`recovery_folder`,
:func:`is_resume`, :func:`load_recovery_checkpoint`,
:func:`save_recovery_checkpoint`, :func:`atomic_write`, :func:`ranks`). These
names are imported on first use, so importing the package stays cheap.

The public API
--------------

Plugins, the Lightning layer (:mod:`himl_kernel.lightning`) and third parties
import from the kernel only the names of this package and these modules
(``.importlinter`` at the repository root checks it in CI; every other kernel
module may change without notice):

- ``himl_kernel.errors``: HimlError, the one-line user error
- ``himl_kernel.hookspecs``: the hooks a plugin implements
- ``himl_kernel.contracts``: the protocols a plugin's objects follow
- ``himl_kernel.registry``: the registries the registration hooks hand out
- ``himl_kernel.plugins``: PluginHost, build_host
- ``himl_kernel.testing``: a plugin author's test kit
- ``himl_kernel.job``: JobSpec and its parts, Submission
- ``himl_kernel.runinfo``: RunInfo, what a job knows about itself
- ``himl_kernel.datasets``: DatasetConfig
- ``himl_kernel.dataset_prep``: prepare_datasets, cache_dir
- ``himl_kernel.snapshot``: Snapshot, the files a job receives
- ``himl_kernel.sweep``: Sweep
- ``himl_kernel.container``: Container, CrossValidation
- ``himl_kernel.submit``: submit_if_needed
- ``himl_kernel.current``: the current run, log_metrics, log_params, attach_sink
- ``himl_kernel.metric_sinks``: the built-in MLflow and TensorBoard sinks
- ``himl_kernel.checkpoints``: resolve_checkpoint and checkpoint references
- ``himl_kernel.runstore``: RunStore, the run's MLflow store
- ``himl_kernel.doctor``: DoctorReport, what ``himl_doctor`` fills
- ``himl_kernel.distributed``: global and local rank, world size
- ``himl_kernel.recovery``: recovery checkpoints, is_resume
- ``himl_kernel.atomic``: atomic_write and its helpers
- ``himl_kernel.compute_common``: the distributed launch and run tags every cloud backend decides alike
- ``himl_kernel.cli.main``: main(argv), the ``himl`` command as a function
- ``himl_kernel.lightning``: the Lightning layer's names (extra ``himl[lightning]``)
- ``himl_kernel.lightning.container``: LightningContainer and its groups of fields
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from himl_kernel.version import __version__

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
    "current_run": "himl_kernel.current",
    "Ranks": "himl_kernel.distributed",
    "ranks": "himl_kernel.distributed",
    "is_global_rank_zero": "himl_kernel.distributed",
    "recovery_folder": "himl_kernel.recovery",
    "is_resume": "himl_kernel.recovery",
    "latest_recovery_checkpoint": "himl_kernel.recovery",
    "load_recovery_checkpoint": "himl_kernel.recovery",
    "save_recovery_checkpoint": "himl_kernel.recovery",
    "atomic_write": "himl_kernel.atomic",
}

__all__ = ["__version__", "hookimpl", *_LAZY]

if TYPE_CHECKING:
    from himl_kernel.atomic import atomic_write
    from himl_kernel.checkpoints import resolve_checkpoint
    from himl_kernel.container import Container
    from himl_kernel.current import current_run, log_metric, log_metrics, log_params
    from himl_kernel.datasets import DatasetConfig
    from himl_kernel.distributed import Ranks, is_global_rank_zero, ranks
    from himl_kernel.errors import HimlError
    from himl_kernel.job import JobSpec
    from himl_kernel.recovery import (
        is_resume,
        latest_recovery_checkpoint,
        load_recovery_checkpoint,
        recovery_folder,
        save_recovery_checkpoint,
    )
    from himl_kernel.runinfo import RunInfo
    from himl_kernel.submit import submit_if_needed
    from himl_kernel.sweep import Sweep


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'himl_kernel' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
