"""What the training runner and the optimizer builder read from a Lightning container.

:class:`~himl_kernel.lightning.container.LightningContainer` calls the runner
(:mod:`himl_kernel.lightning.runner`) and the optimizer builder
(:mod:`himl_kernel.lightning.optim`); they in turn are typed against the
protocols here, not against the container class, so the container module is
imported by no module it imports. mypy checks that LightningContainer
satisfies both protocols where it hands itself over, so a field renamed in the
container and not here fails the type check.

The value types of the settings (the ``Literal`` choices) and the checkpoint
file names live here too, for the same reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from himl_kernel.recovery import RECOVERY_FOLDER

if TYPE_CHECKING:
    from lightning.pytorch import Callback, LightningDataModule, LightningModule

#: The run's checkpoints (``outputs/checkpoints``): the kernel's recovery folder.
CHECKPOINT_FOLDER = RECOVERY_FOLDER
LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT = "best.ckpt"

Profiler = Literal["simple", "advanced", "pytorch"]
OptimizerType = Literal["Adam", "AdamW", "SGD", "RMSprop"]
Schedule = Literal["none", "polynomial", "cosine", "step", "multistep", "exponential"]
Warmup = Literal["none", "linear"]
RunMode = Literal["train", "eval_full"]
CheckpointMode = Literal["min", "max"]


class OptimizerSettings(Protocol):
    """The optimizer and schedule fields (``OptimizerParams``)."""

    l_rate: float
    optimizer_type: OptimizerType
    momentum: float
    weight_decay: float
    adam_betas: tuple[float, float]
    opt_eps: float
    l_rate_scheduler: Schedule
    l_rate_polynomial_gamma: float
    l_rate_exponential_gamma: float
    l_rate_step_gamma: float
    l_rate_step_step_size: int
    l_rate_multi_step_gamma: float
    l_rate_multi_step_milestones: list[int]
    min_l_rate: float
    l_rate_warmup: Warmup
    l_rate_warmup_epochs: int


class TrainingSettings(Protocol):
    """What the runner reads from the container it trains, and the hooks it calls."""

    # TrainerParams
    max_epochs: int
    pl_fast_dev_run: int
    pl_limit_train_batches: int | float | None
    pl_limit_val_batches: int | float | None
    pl_limit_test_batches: int | float | None
    pl_profiler: Profiler | None
    pl_deterministic: bool
    pl_accumulate_grad_batches: int
    pl_num_sanity_val_steps: int
    pl_log_every_n_steps: int
    max_num_gpus: int
    devices: int | None
    strategy: str
    use_mixed_precision: bool
    autosave_every_n_val_epochs: int
    best_checkpoint_metric: str
    best_checkpoint_mode: CheckpointMode
    # WorkflowParams
    src_checkpoint: str
    resume_training: bool
    run_inference_only: bool
    mode: RunMode
    regression_test_folder: Path | None
    regression_test_csv_tolerance: float

    @property
    def checkpoint_folder(self) -> Path: ...

    @property
    def effective_random_seed(self) -> int: ...

    def create_model(self) -> LightningModule: ...

    def get_data_module(self) -> LightningDataModule: ...

    def get_eval_data_module(self) -> LightningDataModule: ...

    def get_callbacks(self) -> list[Callback]: ...

    def get_trainer_arguments(self) -> dict[str, Any]: ...

    def get_checkpoint_to_test(self) -> Path: ...

    def before_training_on_global_rank_zero(self) -> None: ...

    def before_training_on_local_rank_zero(self) -> None: ...

    def before_training_on_all_ranks(self) -> None: ...
