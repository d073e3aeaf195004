"""The training runner: what ``LightningContainer.run`` does inside the job.

1. Seed everything with the run's seed (a cross-validation fold adds its index).
2. Resolve ``src_checkpoint`` (a path, a URL, ``RUN_ID:path``) and check it is
   a complete checkpoint.
3. Inference only (``--run_inference_only``, or ``--mode eval_full``): test the
   checkpoint's weights and stop.
4. Otherwise pick where training starts: the newest complete recovery
   checkpoint in this run's outputs (the run was interrupted and is being
   rerun), else ``src_checkpoint`` with ``--resume_training`` (the whole
   training state, to carry on to a larger ``max_epochs``), else from scratch
   (with ``src_checkpoint``'s weights when given).
5. Train and validate, then test the checkpoint ``get_checkpoint_to_test()``
   names; then the optional regression test.

Inside a job on several machines, AzureML's variables (MPI's ``OMPI_COMM_WORLD_*``
and ``AZ_BATCH_MASTER_NODE``, or the PyTorch distribution's ``RANK``,
``NODE_RANK``, ``MASTER_ADDR``...) become the ones Lightning reads, first thing
(:func:`himl_kernel.distributed.prepare_cluster`, hi-ml's port 6105 by default),
and the Trainer gets the job's ``num_nodes``. Rank zero alone writes
checkpoints; a machine that cannot read the one to test gets its weights from
rank zero.

Under DDP every process runs this function (Lightning re-runs the ``himl run``
command for the other ranks, which join the same run); only global rank zero
logs, writes checkpoints and runs the regression test.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from himl_kernel.distributed import Cluster, global_rank, local_rank, prepare_cluster
from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from lightning.pytorch import Callback, LightningModule, Trainer
    from lightning.pytorch.profilers import Profiler

    from himl_kernel.lightning.flavour import Flavour
    from himl_kernel.lightning.settings import TrainingSettings
    from himl_kernel.runinfo import RunInfo

PROFILER_FOLDER = "profiler"
#: "reference\nlocal path" of the src_checkpoint the first process resolved, for the processes it starts.
ENV_RESOLVED_CHECKPOINT = "HIML_RESOLVED_SRC_CHECKPOINT"


def _say(message: str) -> None:
    if global_rank() == 0:
        print(f"himl: {message}", flush=True)


def resolve_source_checkpoint(container: TrainingSettings) -> Path | None:
    """``src_checkpoint`` as a local, complete file; None when not given.

    The first process resolves it (downloading it if need be) before Lightning
    starts the other processes, and leaves the local path in the environment
    they inherit, so each machine fetches a checkpoint once.
    """
    reference = container.src_checkpoint.strip()
    if not reference:
        return None
    from himl_kernel.checkpoints import resolve_checkpoint
    from himl_kernel.recovery import check_checkpoint

    inherited = os.environ.get(ENV_RESOLVED_CHECKPOINT, "")
    known, _, local = inherited.partition("\n")
    if known == reference and local and Path(local).is_file():
        path = Path(local)
    else:
        path = resolve_checkpoint(reference)
        os.environ[ENV_RESOLVED_CHECKPOINT] = f"{reference}\n{path}"
    return check_checkpoint(path, "src_checkpoint")


def _accelerator_and_devices(container: TrainingSettings) -> tuple[str, int]:
    import torch

    gpus = torch.cuda.device_count() if container.max_num_gpus != 0 else 0
    if container.max_num_gpus > 0:
        gpus = min(gpus, container.max_num_gpus)
    if gpus > 0:
        return "gpu", container.devices or gpus
    return "cpu", container.devices or 1


def _layout(container: TrainingSettings) -> tuple[str, int, Cluster | None]:
    """(accelerator, processes per machine, the job's machines) for the Trainer.

    Inside a distributed AzureML job (or torchrun) the launcher's variables
    are turned into the ones Lightning reads (:func:`prepare_cluster`), and
    the number of machines comes from them.
    """
    accelerator, devices = _accelerator_and_devices(container)
    cluster = prepare_cluster(devices, devices_given=container.devices is not None)
    if cluster is not None:
        devices = cluster.processes_per_node or devices
    return accelerator, devices, cluster


def _announce(cluster: Cluster, devices: int) -> None:
    """One line per machine (its first process) saying how the job's machines meet, as hi-ml prints it."""
    if local_rank() == 0:
        print(
            f"himl: distributed training ({cluster.style}): {cluster.num_nodes} machines x {devices} processes, "
            f"MASTER_ADDR={cluster.master_addr}, MASTER_PORT={cluster.master_port}, NODE_RANK={cluster.node_rank}",
            flush=True,
        )


def _profiler(container: TrainingSettings, folder: Path, flavour: Flavour) -> Profiler | None:
    if container.pl_profiler is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    name = {"simple": "SimpleProfiler", "advanced": "AdvancedProfiler"}.get(container.pl_profiler, "PyTorchProfiler")
    profiler: Profiler = flavour.attribute("profilers", name)(dirpath=folder, filename="profile")
    return profiler


def create_trainer(container: TrainingSettings, run_info: RunInfo, flavour: Flavour | None = None) -> Trainer:
    """The Trainer for this container and run: loggers, checkpoints, callbacks, devices.

    ``flavour`` is the Lightning package of the model (see
    :mod:`himl_kernel.lightning.flavour`); the Trainer and every callback are
    that package's. Default: ``lightning.pytorch``.
    """
    from himl_kernel.lightning.flavour import LIGHTNING, Flavour, check_same_flavour

    flavour = flavour or Flavour(LIGHTNING)
    adapt = flavour.adapt
    ModelCheckpoint = flavour.attribute("callbacks", "ModelCheckpoint")

    from himl_kernel.lightning.callbacks import BatchTimeCallback, LineProgressBar
    from himl_kernel.lightning.checkpointing import AtomicCheckpointIO, RecoveryCheckpoint
    from himl_kernel.lightning.loggers import RunLogger
    from himl_kernel.lightning.settings import BEST_CHECKPOINT, LAST_CHECKPOINT

    folder = container.checkpoint_folder
    metric = container.best_checkpoint_metric.strip()
    # last.ckpt is written after every validation: a top-1 checkpoint of "the newest"
    # (Lightning's save_last only writes when a top-k checkpoint was written too).
    callbacks: list[Callback] = [
        ModelCheckpoint(dirpath=folder, filename=LAST_CHECKPOINT.removesuffix(".ckpt"), enable_version_counter=False),
        adapt(BatchTimeCallback)(),
    ]
    if metric:
        best = ModelCheckpoint(
            dirpath=folder,
            filename=BEST_CHECKPOINT.removesuffix(".ckpt"),
            monitor=metric,
            mode=container.best_checkpoint_mode,
            save_top_k=1,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )
        callbacks.append(best)
    if container.autosave_every_n_val_epochs > 0 and not container.pl_fast_dev_run:
        callbacks.append(adapt(RecoveryCheckpoint)(folder, container.autosave_every_n_val_epochs))
    for callback in container.get_callbacks():
        check_same_flavour(flavour, callback, "Callback", f"get_callbacks()'s {type(callback).__name__}")
        callbacks.append(callback)
    progress_bar = flavour.attribute("callbacks", "ProgressBar")
    if not sys.stdout.isatty() and not any(isinstance(c, progress_bar) for c in callbacks):
        callbacks.append(adapt(LineProgressBar)())  # a container's own bar (AzureMLProgressBar...) wins

    accelerator, devices, cluster = _layout(container)
    mixed = "16-mixed" if accelerator == "gpu" else "bf16-mixed"
    precision = mixed if container.use_mixed_precision else "32-true"
    arguments: dict[str, Any] = {
        "default_root_dir": str(run_info.output_folder),
        "max_epochs": container.max_epochs,
        "fast_dev_run": container.pl_fast_dev_run or False,
        "deterministic": container.pl_deterministic,
        "accumulate_grad_batches": container.pl_accumulate_grad_batches,
        "num_sanity_val_steps": container.pl_num_sanity_val_steps,
        "log_every_n_steps": container.pl_log_every_n_steps,
        "accelerator": accelerator,
        "devices": devices,
        "strategy": container.strategy,
        "precision": precision,
        "logger": [adapt(RunLogger)(run_info)],
        "callbacks": callbacks,
        "num_nodes": cluster.num_nodes if cluster is not None else 1,
        "plugins": [adapt(AtomicCheckpointIO)()],
        "profiler": _profiler(container, run_info.output_folder / PROFILER_FOLDER, flavour),
        "enable_model_summary": False,
    }
    for name, value in (
        ("limit_train_batches", container.pl_limit_train_batches),
        ("limit_val_batches", container.pl_limit_val_batches),
        ("limit_test_batches", container.pl_limit_test_batches),
    ):
        if value is not None:
            arguments[name] = value
    if cluster is not None:
        # Lightning's own environment reads what prepare_cluster set; named here so that no other
        # (MPI through mpi4py, SLURM...) is detected instead and numbers the processes differently
        arguments["plugins"].append(flavour.attribute("plugins.environments", "LightningEnvironment")())
    arguments.update(container.get_trainer_arguments())
    trainer: Trainer = flavour.attribute("", "Trainer")(**arguments)
    return trainer


def _seed(container: TrainingSettings) -> int:
    from lightning.pytorch import seed_everything

    seed = container.effective_random_seed
    seed_everything(seed, workers=True, verbose=False)
    return seed


def _test(container: TrainingSettings, trainer: Trainer, model: LightningModule, data: Any, ckpt: Path | None) -> None:
    results = trainer.test(model, datamodule=data, ckpt_path=str(ckpt) if ckpt is not None else None, verbose=False)
    if results:
        shown = ", ".join(f"{k}={v:.6g}" for k, v in sorted(results[0].items()))
        _say(f"test: {shown}")


def run_training(container: TrainingSettings, run_info: RunInfo) -> None:
    """Train, validate and test ``container``'s model as run ``run_info`` (see the module docs)."""
    inherited = os.environ.get(ENV_RESOLVED_CHECKPOINT)
    try:
        _run_training(container, run_info)
    finally:
        if inherited is None:
            os.environ.pop(ENV_RESOLVED_CHECKPOINT, None)


def _run_training(container: TrainingSettings, run_info: RunInfo) -> None:
    from himl_kernel.current import log_params
    from himl_kernel.lightning.checkpointing import find_recovery_checkpoint, remove_partial_files

    folder = container.checkpoint_folder
    _, devices, cluster = _layout(container)  # before any rank is asked: NODE_RANK and the rest are set
    if cluster is not None:
        _announce(cluster, devices)
    rank_zero = global_rank() == 0
    if rank_zero:
        folder.mkdir(parents=True, exist_ok=True)
        remove_partial_files(folder)
    seed = _seed(container)
    if rank_zero:
        log_params({"effective_random_seed": seed})
    source = resolve_source_checkpoint(container)

    if container.run_inference_only or container.mode == "eval_full":
        if source is None:
            what = "--run_inference_only" if container.run_inference_only else "--mode eval_full"
            raise HimlError(f"{what} needs --src_checkpoint: the checkpoint whose model is tested")
        data = container.get_eval_data_module() if container.mode == "eval_full" else container.get_data_module()
        model = container.create_model()
        trainer = create_trainer(container, run_info, _flavour(model, data))
        _say(f"inference with {source}")
        _test(container, trainer, model, data, source)
        _regression_test(container, run_info)
        return

    recovery = find_recovery_checkpoint(folder, warn=rank_zero)
    if rank_zero:
        container.before_training_on_global_rank_zero()
    if local_rank() == 0:
        container.before_training_on_local_rank_zero()
    container.before_training_on_all_ranks()

    model = container.create_model()
    data = container.get_data_module()
    start: Path | None = None
    if recovery is not None:
        start = recovery
        _say(f"resuming from recovery checkpoint {recovery}")
    elif source is not None and container.resume_training:
        start = source
        _say(f"resuming training from {source}")
    elif source is not None:
        _load_weights(model, source)
        _say(f"starting from the weights of {source}")
    trainer = create_trainer(container, run_info, _flavour(model, data))
    trainer.fit(model, datamodule=data, ckpt_path=str(start) if start is not None else None)

    to_test: Path | None = None
    if not container.pl_fast_dev_run:
        to_test = container.get_checkpoint_to_test()
        if rank_zero and not to_test.is_file():
            raise HimlError(f"the checkpoint to test, {to_test}, was not written; check get_checkpoint_to_test()")
        to_test = _checkpoint_everywhere(trainer, model, to_test)
    _test(container, trainer, model, data, to_test)
    _regression_test(container, run_info)


def _checkpoint_everywhere(trainer: Trainer, model: LightningModule, path: Path) -> Path | None:
    """``path`` when every process can read it; else its weights, sent from rank zero, loaded into ``model``.

    The machines of a job each have their own disk, and rank zero alone
    writes checkpoints: the other machines cannot open the file. Every
    process must then test the same weights, so rank zero's are broadcast.
    """
    if trainer.world_size <= 1 or trainer.strategy.reduce_boolean_decision(path.is_file(), all=True):
        return path
    import torch

    state: Any = None
    if trainer.is_global_zero:
        state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    state = trainer.strategy.broadcast(state, src=0)
    model.load_state_dict(state)
    _say(f"testing the weights of {path}, sent from the first machine to the others")
    return None


def _flavour(model: object, data: object) -> Flavour:
    """The Lightning package of ``model``; a data module of the other one is refused in one line."""
    from himl_kernel.lightning.flavour import check_same_flavour, flavour_of

    flavour = flavour_of(model)
    check_same_flavour(flavour, data, "LightningDataModule", "get_data_module()'s result")
    return flavour


def _load_weights(model: LightningModule, path: Path) -> None:
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if state is None:
        raise HimlError(f"src_checkpoint {path} holds no 'state_dict': it is not a Lightning checkpoint")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise HimlError(f"src_checkpoint {path} does not fit the model: {first}") from exc


def _regression_test(container: TrainingSettings, run_info: RunInfo) -> None:
    if container.regression_test_folder is None or global_rank() != 0:
        return
    from himl_kernel.lightning.regression import compare_with_folder
    from himl_kernel.runstore import RunStore

    metrics = RunStore(tracking_uri=run_info.tracking_uri).get(run_info.run_id).metrics
    compare_with_folder(
        container.regression_test_folder, run_info.output_folder, metrics, container.regression_test_csv_tolerance
    )
    _say(f"regression test against {container.regression_test_folder} passed")
