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
skipped with a one-line warning.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning.pytorch import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from lightning.pytorch import LightningModule, Trainer

RECOVERY_PREFIX = "recovery-epoch="
RECOVERY_PATTERN = re.compile(r"recovery-epoch=(\d+)\.ckpt")
TEMP_SUFFIX = ".partial"
PENDING_SUFFIX = ".pending"


def fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_torch_save(obj: Any, target: Path) -> None:
    """``torch.save`` into ``target`` so that readers see the old file or the whole new one."""
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes the file private; a checkpoint is as readable as other outputs
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    fsync_folder(target.parent)


def remove_partial_files(folder: Path) -> None:
    """Delete temporary and uncommitted files a killed process left in ``folder``."""
    if folder.is_dir():
        for suffix in (TEMP_SUFFIX, PENDING_SUFFIX):
            for stray in folder.glob(f".*{suffix}"):
                with contextlib.suppress(OSError):
                    stray.unlink()


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


def checkpoint_problem(path: Path) -> str:
    """Why ``path`` is not a complete torch checkpoint, or "" when it reads back whole.

    torch.save writes a zip archive; the archive's directory sits at its end
    and every member carries a CRC, so a truncated or overwritten file fails
    here without unpickling anything.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not any(name.endswith("data.pkl") for name in names):
                return "it is not a torch checkpoint (no data.pkl)"
            bad = archive.testzip()
            if bad is not None:
                return f"member {bad} is damaged"
    except FileNotFoundError:
        return "it does not exist"
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        return f"it is truncated or corrupt ({type(exc).__name__}: {exc})"
    return ""


def check_checkpoint(path: Path, what: str = "checkpoint") -> Path:
    """``path`` if it is a complete checkpoint, else a one-line :class:`HimlError` naming it."""
    problem = checkpoint_problem(path)
    if problem:
        raise HimlError(f"{what} {path} cannot be used: {problem}")
    return path


def recovery_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of the recovery checkpoints in ``folder``, newest first."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = RECOVERY_PATTERN.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def find_recovery_checkpoint(folder: Path, warn: bool = True) -> Path | None:
    """The newest complete recovery checkpoint in ``folder``; damaged ones are skipped with a warning."""
    for _, path in recovery_checkpoints(folder):
        problem = checkpoint_problem(path)
        if not problem:
            return path
        if warn:
            print(f"himl: warning: skipping recovery checkpoint {path}: {problem}", file=sys.stderr, flush=True)
    return None


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
        target = self.folder / f"{RECOVERY_PREFIX}{epoch:04d}.ckpt"
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
        os.replace(pending, target)
        fsync_folder(self.folder)
        for _, old in recovery_checkpoints(self.folder)[self.keep :]:
            with contextlib.suppress(OSError):
                old.unlink()
