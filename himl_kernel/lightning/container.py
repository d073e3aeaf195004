"""LightningContainer: a kernel container whose experiment is a LightningModule.

The settings come in groups, each a pydantic mixin whose field names and
meaning follow hi-ml's health_ml, so a hi-ml command line or YAML config
carries over:

- :class:`TrainerParams`: how long and how the Trainer runs (``max_epochs``,
  ``pl_*`` options, devices, mixed precision, recovery checkpoints);
- :class:`OptimizerParams`: the optimizer and learning-rate schedule that
  :meth:`LightningContainer.create_optimizers` builds for models that do not
  write their own ``configure_optimizers``;
- :class:`WorkflowParams`: seeds, cross-validation, seed sweeps, checkpoints to
  start from, inference only, regression tests;
- :class:`DatasetParams`: the datasets the job reads.

hi-ml's ``--tag`` and ``--experiment`` are ``himl run``'s own options
(``--tag KEY=VALUE``, ``--display-name``, ``--experiment``), so the container
has no fields of those names.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, PrivateAttr

from himl_kernel.container import Container, CrossValidation
from himl_kernel.errors import HimlError
from himl_kernel.lightning.settings import (
    LAST_CHECKPOINT,
    OptimizerType,
    Profiler,
    RunMode,
    Schedule,
    Warmup,
)
from himl_kernel.recovery import recovery_folder

if TYPE_CHECKING:
    from lightning.pytorch import Callback, LightningDataModule, LightningModule
    from torch.optim import Optimizer

    from himl_kernel.datasets import DatasetConfig
    from himl_kernel.runinfo import RunInfo
    from himl_kernel.sweep import Sweep


class TrainerParams(BaseModel):
    """How the Lightning Trainer runs."""

    max_epochs: int = Field(100, ge=1, description="epochs to train for")
    pl_fast_dev_run: int = Field(
        0, ge=0, description="if above 0: run that many batches of train, val and test as a smoke test (no checkpoints)"
    )
    pl_limit_train_batches: int | float | None = Field(
        None, description="training batches per epoch: a count, or a fraction of the data"
    )
    pl_limit_val_batches: int | float | None = Field(None, description="validation batches per epoch (count/fraction)")
    pl_limit_test_batches: int | float | None = Field(None, description="test batches (count or fraction)")
    pl_profiler: Profiler | None = Field(
        None,
        description="profile the run with Lightning's simple, advanced or pytorch profiler; output: outputs/profiler",
    )
    pl_deterministic: bool = Field(False, description="use deterministic algorithms only (torch)")
    pl_accumulate_grad_batches: int = Field(1, ge=1, description="batches whose gradients add up to one step")
    pl_num_sanity_val_steps: int = Field(2, ge=-1, description="validation batches run before training (-1: all)")
    pl_log_every_n_steps: int = Field(50, ge=1, description="how often step-level metrics are logged")
    max_num_gpus: int = Field(-1, ge=-1, description="GPUs to use at most; -1: all there are, 0: none (CPU)")
    devices: int | None = Field(
        None, ge=1, description="processes on this machine; default: one per GPU (max_num_gpus), else 1 on the CPU"
    )
    strategy: str = Field("auto", description="Lightning strategy, e.g. ddp; 'auto' picks DDP for several devices")
    use_mixed_precision: bool = Field(False, description="train with 16-bit mixed precision on GPUs (bf16 on CPU)")
    autosave_every_n_val_epochs: int = Field(
        1, ge=0, description="write a recovery checkpoint every N epochs (0: never); a rerun resumes from it"
    )
    best_checkpoint_metric: str = Field(
        "val/loss", description="the metric that picks the best checkpoint (checkpoints/best.ckpt); empty: none"
    )
    best_checkpoint_mode: Literal["min", "max"] = Field("min", description="whether the best metric is low or high")


class OptimizerParams(BaseModel):
    """The optimizer and learning-rate schedule (hi-ml's choices)."""

    l_rate: float = Field(1e-4, gt=0, description="the learning rate at the start of the schedule")
    optimizer_type: OptimizerType = Field("Adam", description="Adam, AdamW, SGD or RMSprop")
    momentum: float = Field(0.6, ge=0, description="momentum of SGD and RMSprop")
    weight_decay: float = Field(1e-4, ge=0, description="weight decay (L2 penalty)")
    adam_betas: tuple[float, float] = Field((0.9, 0.999), description="Adam and AdamW betas")
    opt_eps: float = Field(1e-4, gt=0, description="epsilon of Adam, AdamW and RMSprop")
    l_rate_scheduler: Schedule = Field("polynomial", description="how the rate falls over the epochs")
    l_rate_polynomial_gamma: float = Field(1e-4, ge=0, description="exponent of the polynomial schedule")
    l_rate_exponential_gamma: float = Field(0.9, gt=0, description="factor per epoch of the exponential schedule")
    l_rate_step_gamma: float = Field(0.1, gt=0, description="factor of the step schedule")
    l_rate_step_step_size: int = Field(50, ge=1, description="epochs between steps of the step schedule")
    l_rate_multi_step_gamma: float = Field(0.1, gt=0, description="factor at each multistep milestone")
    l_rate_multi_step_milestones: list[int] = Field(default_factory=list, description="epochs of the multistep drops")
    min_l_rate: float = Field(0.0, ge=0, description="the rate never falls below this")
    l_rate_warmup: Warmup = Field("none", description="linear: rise to l_rate over l_rate_warmup_epochs")
    l_rate_warmup_epochs: int = Field(0, ge=0, description="epochs of warm-up before the schedule starts")


class WorkflowParams(BaseModel):
    """Seeds, sweeps, starting checkpoints, inference, regression tests."""

    random_seed: int = Field(42, description="seed of everything; a cross-validation fold adds its index")
    different_seeds: int = Field(0, ge=0, description="if above 0: that many child runs, seeds 0, 1, ... (hi-ml's)")
    hyperdrive: bool = Field(False, description="run the sweep get_parameter_tuning_args() describes")
    src_checkpoint: str = Field(
        "", description="checkpoint to start from: a path, an https:// URL, or RUN_ID:checkpoints/last.ckpt"
    )
    resume_training: bool = Field(
        False, description="continue training from src_checkpoint (epoch, optimizer) instead of only its weights"
    )
    run_inference_only: bool = Field(False, description="no training: test the model of src_checkpoint")
    mode: RunMode = Field("train", description="train, or eval_full: inference on get_eval_data_module()")
    log_from_vm: bool = Field(
        False, description="a run on this machine also logs to a run in the AzureML workspace (himl-azure-v2)"
    )
    regression_test_folder: Path | None = Field(
        None, description="a folder of expected outputs (and metrics.json) to compare the run with"
    )
    regression_test_csv_tolerance: float = Field(
        0.0, ge=0, description="relative tolerance for numbers in CSV files and metrics in the regression test"
    )


class DatasetParams(BaseModel):
    """The datasets the job reads (hi-ml's names)."""

    azure_datasets: list[str] = Field(default_factory=list, description="dataset names in the datastore")
    local_datasets: list[Path] = Field(default_factory=list, description="folders holding the datasets here")
    dataset_mountpoints: list[Path] = Field(default_factory=list, description="where each dataset appears in the job")
    datastore: str = Field("", description="the datastore of azure_datasets; empty: the workspace default")


class LightningContainer(TrainerParams, OptimizerParams, WorkflowParams, DatasetParams, CrossValidation, Container):
    """A Lightning experiment: override create_model and get_data_module."""

    _input_folders: list[Path | None] = PrivateAttr(default_factory=list)
    _run_info: RunInfo | None = PrivateAttr(default=None)
    _num_nodes: int | None = PrivateAttr(default=None)

    @property
    def num_nodes(self) -> int:
        """hi-ml's ``num_nodes``: the machines of the job.

        Not a field: the job's size is ``himl run --num_nodes``, shared by every
        backend. A container that sets it (``self.num_nodes = 2`` in
        ``__init__``, as hi-ml's do) gives that option its default; the
        command line still wins.
        """
        return self._num_nodes or 1

    @num_nodes.setter
    def num_nodes(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise HimlError(
                f"{type(self).__name__}.num_nodes must be a whole number of machines, at least 1; got {value!r}"
            )
        self._num_nodes = value

    def default_num_nodes(self) -> int | None:
        return self._num_nodes

    # -- what a model author overrides -----------------------------------------
    def create_model(self) -> LightningModule:
        """The LightningModule to train."""
        raise NotImplementedError(f"{type(self).__name__} must implement create_model()")

    def get_data_module(self) -> LightningDataModule:
        """The data for training, validation and testing."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_data_module()")

    def get_eval_data_module(self) -> LightningDataModule:
        """The data that ``--mode eval_full`` runs inference on; default: get_data_module()."""
        return self.get_data_module()

    def get_callbacks(self) -> list[Callback]:
        """Callbacks to add to the Trainer's own."""
        return []

    def get_trainer_arguments(self) -> dict[str, Any]:
        """Extra keyword arguments for ``lightning.pytorch.Trainer`` (they win over the container's)."""
        return {}

    def get_parameter_tuning_args(self) -> dict[str, Any]:
        """The sweep of ``--hyperdrive``: field name to the values to try (a grid of child runs), or hi-ml's
        SDK v2 dict (keys in :mod:`himl_kernel.sweep`: ``parameter_sampling`` of azure-ai-ml ``Choice``,
        ``Uniform``..., ``sampling_algorithm``, ``max_total_trials``, ``primary_metric``, ``goal``)."""
        return {}

    def get_checkpoint_to_test(self) -> Path:
        """The checkpoint whose weights are tested after training; default: checkpoints/last.ckpt."""
        return self.checkpoint_folder / LAST_CHECKPOINT

    def before_training_on_global_rank_zero(self) -> None:
        """Called once per run before training (on global rank zero only)."""

    def before_training_on_local_rank_zero(self) -> None:
        """Called once per machine before training: a place for dataset preparation."""

    def before_training_on_all_ranks(self) -> None:
        """Called in every process before training."""

    # -- facts the runner fills in ---------------------------------------------
    @property
    def run_info(self) -> RunInfo:
        if self._run_info is None:
            raise HimlError(f"{type(self).__name__}: run_info is set only while the container runs")
        return self._run_info

    @property
    def outputs_folder(self) -> Path:
        """Where files kept with the run go."""
        return self.run_info.output_folder

    @property
    def logs_folder(self) -> Path:
        return self.run_info.logs_folder

    @property
    def checkpoint_folder(self) -> Path:
        """The run's checkpoints, recovery checkpoints among them (the kernel's recovery folder)."""
        return recovery_folder(self.run_info)

    @property
    def input_folders(self) -> list[Path | None]:
        """One folder per input dataset, in the order get_input_datasets() gives them."""
        return list(self._input_folders)

    @property
    def is_crossvalidation_child(self) -> bool:
        return self.crossval_count > 1 and self.crossval_index is not None

    @property
    def effective_random_seed(self) -> int:
        """The seed of this run: random_seed, plus the fold index for a cross-validation child."""
        if self.is_crossvalidation_child and self.crossval_index is not None:
            return self.random_seed + self.crossval_index
        return self.random_seed

    # -- kernel contract -------------------------------------------------------
    def get_input_datasets(self) -> list[DatasetConfig]:
        from himl_kernel.datasets import DatasetConfig

        names, folders, mounts = self.azure_datasets, self.local_datasets, self.dataset_mountpoints
        count = max(len(names), len(folders))
        for label, values in (("local_datasets", folders), ("dataset_mountpoints", mounts)):
            if names and values and len(values) != len(names):
                raise HimlError(
                    f"{label} has {len(values)} entries but azure_datasets has {len(names)}; give one per dataset"
                )
        configs = []
        for index in range(count):
            configs.append(
                DatasetConfig(
                    name=names[index] if index < len(names) else "",
                    datastore=self.datastore,
                    local_folder=folders[index] if index < len(folders) else None,
                    target_folder=mounts[index] if index < len(mounts) else None,
                )
            )
        return configs

    def get_sweep(self) -> Sweep | None:
        from himl_kernel.sweep import Sweep, is_hi_ml_tuning_args, sweep_from_hi_ml_args

        parameters: dict[str, list[Any]] = {}
        tuning: dict[str, Any] = {}
        if self.hyperdrive:
            tuning = dict(self.get_parameter_tuning_args())
            if not tuning:
                raise HimlError(f"--hyperdrive: {type(self).__name__}.get_parameter_tuning_args() returned no values")
            if not is_hi_ml_tuning_args(tuning):
                parameters.update(tuning)
        if self.is_crossvalidation_parent:
            parameters["crossval_index"] = list(range(self.crossval_count))
        if self.different_seeds > 0:
            parameters["random_seed"] = list(range(self.different_seeds))  # hi-ml's seeds: 0, 1, ..., N-1
        if tuning and is_hi_ml_tuning_args(tuning):  # hi-ml's SDK v2 dict: search space, sampling, trials
            return sweep_from_hi_ml_args(tuning, extra=parameters)
        if not parameters:
            return None
        if list(parameters) == ["crossval_index"]:
            return Sweep.crossval(self.crossval_count)
        if list(parameters) == ["random_seed"]:
            return Sweep.seeds(self.different_seeds, first=0)
        return Sweep(parameters=parameters)

    def get_tags(self) -> dict[str, str]:
        return {"himl.layer": "lightning"}

    def make_paths_absolute(self, base: Path) -> None:
        """The path fields, and ``src_checkpoint`` when it names a file relative to ``base``."""
        super().make_paths_absolute(base)
        reference = self.src_checkpoint.strip()
        if reference and not Path(reference).is_absolute() and (base / reference).is_file():
            self.src_checkpoint = str(base / reference)

    def run(self, run_info: RunInfo) -> None:
        from himl_kernel.lightning.runner import run_training

        self._run_info = run_info
        self._input_folders = list(run_info.input_datasets)
        run_training(self, run_info)

    # -- the default optimizer ---------------------------------------------------
    def create_optimizers(self, parameters: Any) -> dict[str, Any]:
        """What ``configure_optimizers`` returns, built from the optimizer fields.

        A LightningModule that does not write its own may do
        ``return self.container.create_optimizers(self.parameters())``.
        """
        from himl_kernel.lightning.optim import build_optimizer, build_scheduler

        optimizer: Optimizer = build_optimizer(self, parameters)
        scheduler = build_scheduler(self, optimizer, self.max_epochs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
