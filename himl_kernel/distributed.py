"""Which process of a distributed job this is: global rank, local rank, node rank and world size.

Read from what the launchers set, whatever the trainer:

- a started ``torch.distributed`` process group (asked only if torch is
  already imported: this module imports nothing heavy);
- ``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` / ``NODE_RANK`` (``GROUP_RANK``)
  and ``LOCAL_WORLD_SIZE``, as torchrun and AzureML's PyTorch distribution set
  them;
- ``NODE_RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` without ``RANK``, as
  Lightning's (and Fabric's) launcher sets them in the processes it starts;
- ``OMPI_COMM_WORLD_RANK`` / ``..._LOCAL_RANK`` / ``..._SIZE`` /
  ``..._LOCAL_SIZE``, as an MPI job on AzureML sets them.

A process none of them describes is rank zero of a world of one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from himl_kernel.errors import HimlError


@dataclass(frozen=True)
class Ranks:
    """Where this process sits in its job.

    Attributes:
        global_rank: the rank among all processes of the job (0 writes logs and checkpoints).
        local_rank: the rank among the processes on this machine (0 prepares the machine's data).
        node_rank: the index of this machine.
        world_size: how many processes the job has.
    """

    global_rank: int = 0
    local_rank: int = 0
    node_rank: int = 0
    world_size: int = 1

    @property
    def is_global_zero(self) -> bool:
        return self.global_rank == 0

    @property
    def is_local_zero(self) -> bool:
        return self.local_rank == 0


def _int(environ: Mapping[str, str], *names: str) -> int | None:
    """The first of ``names`` set in ``environ``, as a non-negative int; a bad value is a one-line error."""
    for name in names:
        raw = environ.get(name, "").strip()
        if raw:
            try:
                value = int(raw)
            except ValueError:
                raise HimlError(f"environment variable {name}={raw!r} must be a whole number") from None
            if value < 0:
                raise HimlError(f"environment variable {name}={raw!r} must not be negative")
            return value
    return None


def _from_process_group() -> tuple[int, int] | None:
    """(rank, world size) of a started torch.distributed group; None when torch is not in use."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is None:
        return None
    try:
        if distributed.is_available() and distributed.is_initialized():
            return int(distributed.get_rank()), int(distributed.get_world_size())
    except (RuntimeError, ValueError):  # a group being torn down
        return None
    return None


def ranks(environ: Mapping[str, str] | None = None) -> Ranks:
    """This process's :class:`Ranks` (see the module docs for where they come from)."""
    env = os.environ if environ is None else environ
    local = _int(env, "LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK") or 0
    node = _int(env, "NODE_RANK", "GROUP_RANK") or 0
    world = _int(env, "WORLD_SIZE", "OMPI_COMM_WORLD_SIZE")
    rank = _int(env, "RANK", "OMPI_COMM_WORLD_RANK")
    group = _from_process_group() if environ is None else None
    if group is not None:
        rank, world = group
    if rank is None:
        # Lightning's launcher sets no RANK: the processes of one machine are
        # numbered by LOCAL_RANK, machine after machine.
        per_node = _int(env, "LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE") or 1
        rank = node * per_node + local
    world = max(world or 1, rank + 1)
    return Ranks(global_rank=rank, local_rank=local, node_rank=node, world_size=world)


def global_rank() -> int:
    """This process's rank among all the job's processes."""
    return ranks().global_rank


def local_rank() -> int:
    """This process's rank on its machine."""
    return ranks().local_rank


def world_size() -> int:
    """How many processes the job has."""
    return ranks().world_size


def is_global_rank_zero() -> bool:
    """Whether this process is the one that logs metrics and writes checkpoints."""
    return ranks().is_global_zero
