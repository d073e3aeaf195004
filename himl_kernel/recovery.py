"""What a training loop needs to carry on after its process was killed, whatever the trainer.

A preempted or killed run is rerun with the same command; the backend gives it
the same run and outputs folder back (the local backend resumes the
interrupted run, AzureML restarts the job). The training loop then asks:

- :func:`recovery_folder`: where this run keeps its recovery checkpoints
  (``outputs/checkpoints``);
- :func:`is_resume` / :func:`load_recovery_checkpoint`: whether an earlier
  attempt left a state to carry on from, and that state;
- :func:`save_recovery_checkpoint`: write the state of an epoch, atomically,
  on global rank zero only, keeping the newest few;
- :mod:`himl_kernel.distributed`: which process this is.

Metrics need nothing special: :func:`himl_kernel.log_metrics` drops every
(metric, step) the run already holds, so epochs trained again after a kill are
not logged twice. A plain PyTorch loop::

    from himl_kernel import load_recovery_checkpoint, log_metrics, save_recovery_checkpoint

    start = 0
    resumed = load_recovery_checkpoint()
    if resumed is not None:
        epoch, state = resumed
        model.load_state_dict(state["model"])
        start = epoch + 1
    for epoch in range(start, epochs):
        ...
        log_metrics({"train/loss": loss}, step=epoch)
        save_recovery_checkpoint({"model": model.state_dict()}, epoch)

Recovery checkpoints are named ``recovery-epoch=NNNN.ckpt``, the names the
Lightning layer writes too.
"""

from __future__ import annotations

import contextlib
import re
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from himl_kernel.atomic import atomic_write, remove_partial_files
from himl_kernel.distributed import ranks
from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.runinfo import RunInfo

#: The folder, inside the run's outputs, that holds its checkpoints.
RECOVERY_FOLDER = "checkpoints"
RECOVERY_PREFIX = "recovery-epoch="
RECOVERY_PATTERN = re.compile(r"recovery-epoch=(\d+)\.ckpt")
#: How many recovery checkpoints :func:`save_recovery_checkpoint` keeps by default.
KEEP = 2


def _run(run: RunInfo | None) -> RunInfo:
    if run is not None:
        return run
    from himl_kernel.current import current_run_or_fail

    return current_run_or_fail()


def recovery_folder(run: RunInfo | None = None) -> Path:
    """The folder of ``run``'s (default: the current run's) recovery checkpoints."""
    return _run(run).output_folder / RECOVERY_FOLDER


def recovery_checkpoint_name(epoch: int) -> str:
    """``recovery-epoch=NNNN.ckpt``, the name of the recovery checkpoint of ``epoch``."""
    if epoch < 0:
        raise HimlError(f"a recovery checkpoint's epoch must not be negative, got {epoch}")
    return f"{RECOVERY_PREFIX}{epoch:04d}.ckpt"


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


def checkpoint_problem(path: Path) -> str:
    """Why ``path`` is not a complete torch checkpoint, or "" when it reads back whole.

    ``torch.save`` writes a zip archive whose directory sits at its end and
    whose members each carry a CRC, so a truncated or overwritten file fails
    here without unpickling anything (and without importing torch).
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


def find_recovery_checkpoint(folder: Path, warn: bool = True) -> Path | None:
    """The newest complete recovery checkpoint in ``folder``; damaged ones are skipped with a warning."""
    for _, path in recovery_checkpoints(folder):
        problem = checkpoint_problem(path)
        if not problem:
            return path
        if warn:
            print(f"himl: warning: skipping recovery checkpoint {path}: {problem}", file=sys.stderr, flush=True)
    return None


def latest_recovery_checkpoint(run: RunInfo | None = None) -> Path | None:
    """The newest complete recovery checkpoint of ``run`` (default: the current run), if any.

    Damaged ones are skipped, with a warning from global rank zero.
    """
    return find_recovery_checkpoint(recovery_folder(run), warn=ranks().is_global_zero)


def is_resume(run: RunInfo | None = None) -> bool:
    """Whether this start carries on an earlier attempt: it left a complete recovery checkpoint."""
    return find_recovery_checkpoint(recovery_folder(run), warn=False) is not None


def load_recovery_checkpoint(run: RunInfo | None = None, *, weights_only: bool = True) -> tuple[int, Any] | None:
    """``(epoch, state)`` of the newest complete recovery checkpoint, or None on a first start.

    The state is what :func:`save_recovery_checkpoint` was given, read with
    ``torch.load`` on the CPU. ``weights_only`` (the default) reads tensors,
    numbers, strings and containers of them, and nothing that runs code.
    """
    path = latest_recovery_checkpoint(run)
    if path is None:
        return None
    import torch

    match = RECOVERY_PATTERN.fullmatch(path.name)
    assert match is not None  # found by that pattern
    return int(match.group(1)), torch.load(path, map_location="cpu", weights_only=weights_only)


def prune_recovery_checkpoints(folder: Path, keep: int = KEEP) -> None:
    """Delete all but the newest ``keep`` recovery checkpoints in ``folder``."""
    for _, old in recovery_checkpoints(folder)[keep:]:
        with contextlib.suppress(OSError):
            old.unlink()


def save_recovery_checkpoint(state: Any, epoch: int, run: RunInfo | None = None, keep: int = KEEP) -> Path:
    """Write ``state`` (with ``torch.save``) as the recovery checkpoint of ``epoch``; return its path.

    Only global rank zero writes (the other ranks return the path at once).
    The file appears whole or not at all (:func:`himl_kernel.atomic.atomic_write`);
    then all but the newest ``keep`` recovery checkpoints are deleted. Log an
    epoch's metrics before saving its checkpoint: a process killed in between
    trains the epoch again, and the metrics already logged are not repeated.
    """
    if keep < 1:
        raise HimlError(f"save_recovery_checkpoint keeps at least one checkpoint, got keep={keep}")
    folder = recovery_folder(run)
    target = folder / recovery_checkpoint_name(epoch)
    if not ranks().is_global_zero:
        return target
    import torch

    atomic_write(target, lambda handle: torch.save(state, handle))
    prune_recovery_checkpoints(folder, keep)
    return target


def clean_recovery_folder(run: RunInfo | None = None) -> list[Path]:
    """Remove what a killed writer left in the recovery folder (global rank zero only); return it."""
    if not ranks().is_global_zero:
        return []
    return remove_partial_files(recovery_folder(run))
