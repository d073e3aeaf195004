"""Checkpoints that survive a killed process, and finding the one to resume.

Every checkpoint the Trainer writes (``last.ckpt``, ``best.ckpt``, recovery
checkpoints) goes through :class:`AtomicCheckpointIO`: the bytes go to a
temporary file in the same folder, are flushed to disk (fsync), and the file is
renamed over the target. A process killed mid-write leaves the previous file
intact and at worst a stray temporary file, which the next start removes.

Recovery checkpoints (``checkpoints/recovery-epoch=0007.ckpt``) are written
every ``autosave_every_n_val_epochs`` epochs by :class:`RecoveryCheckpoint`;
the newest few are kept. When a run starts, :func:`find_recovery_checkpoint`
picks the newest one that reads back as a complete checkpoint; a damaged one is
skipped with a one-line warning. The names, the folder, the completeness check
and the atomic write are the kernel's (:mod:`himl_kernel.recovery`,
:mod:`himl_kernel.atomic`), shared with trainers other than Lightning.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning.pytorch import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from himl_kernel.atomic import PARTIAL_SUFFIX, atomic_write, move_into_place
from himl_kernel.atomic import remove_partial_files as _remove_partial
from himl_kernel.recovery import (
    RECOVERY_PATTERN,
    RECOVERY_PREFIX,
    check_checkpoint,
    checkpoint_problem,
    find_recovery_checkpoint,
    prune_recovery_checkpoints,
    recovery_checkpoint_name,
    recovery_checkpoints,
)

if TYPE_CHECKING:
    from lightning.pytorch import LightningModule, Trainer

__all__ = [
    "PENDING_SUFFIX",
    "RECOVERY_PATTERN",
    "RECOVERY_PREFIX",
    "AtomicCheckpointIO",
    "RecoveryCheckpoint",
    "atomic_torch_save",
    "check_checkpoint",
    "checkpoint_problem",
    "find_recovery_checkpoint",
    "recovery_checkpoints",
    "remove_partial_files",
]

#: A recovery checkpoint written but not yet counted (see :class:`RecoveryCheckpoint`).
PENDING_SUFFIX = ".pending"


def atomic_torch_save(obj: Any, target: Path) -> None:
    """``torch.save`` into ``target`` so that readers see the old file or the whole new one."""
    import torch

    atomic_write(target, lambda handle: torch.save(obj, handle))


def remove_partial_files(folder: Path) -> None:
    """Delete temporary and uncommitted files a killed process left in ``folder``."""
    _remove_partial(folder, (PARTIAL_SUFFIX, PENDING_SUFFIX))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, writing every file atomically on local disks."""

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        if "://" in str(path):  # a remote filesystem: Lightning's own transactional write
            super().save_checkpoint(checkpoint, path)
            return
        atomic_torch_save(checkpoint, Path(path))


class RecoveryCheckpoint(Callback):
    """Writes ``recovery-epoch=NNNN.ckpt`` every ``every_n_epochs`` epochs and keeps the newest ``keep``.

    The state is captured when the training epoch ends (after its
    validation), the point from which Lightning resumes with the next epoch.
    Lightning logs the epoch's training metrics only after that hook, so the
    file is written under a hidden pending name and renamed into place when
    the next epoch starts (or training ends): a process killed in between
    leaves no recovery checkpoint claiming an epoch whose metrics were never
    logged, and the rerun trains that epoch again.
    """

    def __init__(self, folder: Path, every_n_epochs: int, keep: int = 2) -> None:
        if every_n_epochs < 1 or keep < 1:
            raise ValueError(f"every_n_epochs and keep must be at least 1, got {every_n_epochs} and {keep}")
        self.folder = folder
        self.every_n_epochs = every_n_epochs
        self.keep = keep
        self._pending: tuple[Path, Path] | None = None

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch
        if trainer.sanity_checking or (epoch + 1) % self.every_n_epochs != 0:
            return
        target = self.folder / recovery_checkpoint_name(epoch)
        pending = self.folder / f".{target.name}{PENDING_SUFFIX}"
        trainer.save_checkpoint(pending, weights_only=False)  # every rank takes part; rank zero writes
        self._pending = (pending, target)

    @override
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._commit(trainer)

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._commit(trainer)

    def _commit(self, trainer: Trainer) -> None:
        if self._pending is None:
            return
        pending, target = self._pending
        self._pending = None
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:  # the epoch's metrics reach the run store before its checkpoint counts
            flush = getattr(logger, "flush", None)
            if callable(flush):
                flush()
        move_into_place(pending, target)
        prune_recovery_checkpoints(self.folder, self.keep)
