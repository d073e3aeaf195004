"""The Lightning layer: experiments written as PyTorch Lightning modules.

Installed with the extra ``himl[lightning]``. A model author subclasses
:class:`~himl_kernel.lightning.container.LightningContainer`, returns a
LightningModule from ``create_model()`` and a LightningDataModule from
``get_data_module()``; ``himl run --model NAME`` then trains, validates and
tests it, with checkpoints, recovery from preemption, metrics in the run
store and TensorBoard, cross-validation and seed sweeps::

    from himl_kernel.lightning import LightningContainer

    class MyExperiment(LightningContainer):
        def create_model(self) -> LightningModule: ...
        def get_data_module(self) -> LightningDataModule: ...

hi-ml's logging helpers and callbacks (``health_ml.utils``) are here under
their hi-ml names, for a Trainer of either Lightning package:
:class:`AzureMLLogger`, :class:`AzureMLProgressBar`,
:class:`BatchTimeCallback`, :func:`log_on_epoch` and
:func:`log_learning_rate`; and hi-ml's ``CheckpointParser`` (from
:mod:`himl_kernel.checkpoints`), for a container field holding a checkpoint reference.

Importing this package imports torch and Lightning; the kernel imports it only
when a Lightning container runs.
"""

from __future__ import annotations

from himl_kernel.checkpoints import CheckpointParser
from himl_kernel.lightning.azureml_logger import AzureMLLogger
from himl_kernel.lightning.callbacks import AzureMLProgressBar, BatchTimeCallback
from himl_kernel.lightning.container import LightningContainer
from himl_kernel.lightning.loggers import log_learning_rate, log_on_epoch

__all__ = [
    "AzureMLLogger",
    "AzureMLProgressBar",
    "BatchTimeCallback",
    "CheckpointParser",
    "LightningContainer",
    "log_learning_rate",
    "log_on_epoch",
]
