"""hi-ml's HyperDrive helper, for scripts that build their own SDK v1 configurations."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azureml.train.hyperdrive import HyperDriveConfig


def create_crossval_hyperdrive_config(
    num_splits: int, cross_val_index_arg_name: str = "crossval_index", metric_name: str = "val/loss"
) -> HyperDriveConfig:
    """A HyperDrive configuration with one child run per cross-validation split, as hi-ml's.

    Child ``i`` receives ``--<cross_val_index_arg_name> i``; the runs are compared by
    ``metric_name`` (minimised), which the training script must log. The run
    configuration is an empty ``ScriptRunConfig``, replaced by the script's own
    when ``submit_if_needed`` (hi-ml's ``submit_to_azure_if_needed``) submits it.

    Raises:
        ValueError: ``num_splits`` is below one.
    """
    from azureml.core import ScriptRunConfig
    from azureml.train.hyperdrive import GridParameterSampling, HyperDriveConfig, PrimaryMetricGoal, choice

    if num_splits < 1:
        raise ValueError(f"num_splits must be at least 1, got {num_splits}")
    return HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory=""),
        hyperparameter_sampling=GridParameterSampling({cross_val_index_arg_name: choice(list(range(num_splits)))}),
        primary_metric_name=metric_name,
        primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
        max_total_runs=num_splits,
    )
