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
    rank = _int(env, "RANK")
    if rank is None and not any(env.get(name, "").strip() for name in ("NODE_RANK", "GROUP_RANK")):
        # an MPI process himl's cluster set-up has not numbered yet (a process Lightning starts
        # inherits OMPI_COMM_WORLD_RANK, the rank of its node's first process: NODE_RANK wins)
        rank = _int(env, "OMPI_COMM_WORLD_RANK")
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


# -- the machines of a job ------------------------------------------------------------------------

#: The port of the first machine when the environment names none (hi-ml's choice).
DEFAULT_MASTER_PORT = 6105
#: Where AzureML names the first machine of a job, in the order they are read (then MASTER_ADDR):
#: ``AZ_BATCH_MASTER_NODE`` is ``address:port`` or ``address``; the MPI variable and ``MASTER_IP`` (AKS)
#: are an address.
MASTER_NODE_VARIABLES = ("AZ_BATCH_MASTER_NODE", "AZ_BATCHAI_MPI_MASTER_NODE", "MASTER_IP", "MASTER_ADDR")


@dataclass(frozen=True)
class Cluster:
    """The machines of a distributed job, as its launcher describes them to each process.

    Attributes:
        style: ``mpi`` (AzureML's MPI distribution: ``OMPI_COMM_WORLD_*``) or ``pytorch`` (AzureML's
            PyTorch distribution, torchrun: ``RANK``, ``WORLD_SIZE``, ``NODE_RANK``...).
        num_nodes: the machines of the job.
        node_rank: the index of this process's machine.
        processes_per_node: how many processes the launcher started on each machine; None when it
            started one and Lightning starts the others (hi-ml's MPI job for Lightning containers).
        master_addr: the address of the first machine, where the process group meets.
        master_port: its port.
    """

    style: str
    num_nodes: int
    node_rank: int
    processes_per_node: int | None
    master_addr: str
    master_port: int


def _master(env: Mapping[str, str], num_nodes: int) -> tuple[str, int]:
    """(address, port) of the job's first machine; a job of several machines without one is an error."""
    address, port = "", None
    for name in MASTER_NODE_VARIABLES:
        raw = env.get(name, "").strip()
        if not raw:
            continue
        if name == "AZ_BATCH_MASTER_NODE":
            head, colon, tail = raw.rpartition(":")
            if colon and head and tail.isdigit():
                raw, port = head, _port(name, tail)
            elif colon:
                raise HimlError(f"environment variable {name}={raw!r} must be ADDRESS or ADDRESS:PORT")
        address = raw
        break
    if not address:
        if num_nodes > 1:
            names = ", ".join(MASTER_NODE_VARIABLES)
            raise HimlError(f"a job on {num_nodes} machines needs the first one's address: none of {names} is set")
        address = "127.0.0.1"
    if port is None:
        raw_port = env.get("MASTER_PORT", "").strip()
        port = _port("MASTER_PORT", raw_port) if raw_port else DEFAULT_MASTER_PORT
    return address, port


def _port(name: str, raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise HimlError(f"environment variable {name}: port {raw!r} must be a whole number from 1 to 65535")
    return int(raw)


def _required(env: Mapping[str, str], name: str, why: str) -> int:
    value = _int(env, name)
    if value is None:
        raise HimlError(f"environment variable {name} is not set, but {why}")
    return value


def cluster_from_environ(environ: Mapping[str, str] | None = None, devices: int = 1) -> Cluster | None:
    """The :class:`Cluster` AzureML's (or torchrun's) variables describe; None outside a distributed launch.

    ``devices`` is the number of processes a machine runs when the launcher
    does not say (the PyTorch distribution without ``LOCAL_WORLD_SIZE``).
    A process Lightning started itself (``LOCAL_RANK`` and ``NODE_RANK``
    only) is no launch of its own: None, unless it inherited a launcher's
    variables. Inconsistent variables are a one-line error naming them.
    """
    env = os.environ if environ is None else environ
    if _int(env, "RANK") is None and _int(env, "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK") is not None:
        why = "OMPI_COMM_WORLD_RANK or OMPI_COMM_WORLD_SIZE is (an MPI job)"
        size = _required(env, "OMPI_COMM_WORLD_SIZE", why)
        rank = _required(env, "OMPI_COMM_WORLD_RANK", why)
        per_node = _int(env, "OMPI_COMM_WORLD_LOCAL_SIZE") or 1
        if size < 1 or rank >= size or size % per_node:
            raise HimlError(
                f"MPI variables do not fit together: OMPI_COMM_WORLD_RANK={rank}, OMPI_COMM_WORLD_SIZE={size}, "
                f"OMPI_COMM_WORLD_LOCAL_SIZE={per_node} (rank below size, size a multiple of the local size)"
            )
        nodes = size // per_node
        if nodes == 1 and per_node == 1:
            return None  # one process on one machine: nothing to set up
        # hi-ml's MPI job runs one process per machine, whose MPI rank is the machine's index
        address, port = _master(env, nodes)
        return Cluster("mpi", nodes, rank // per_node, per_node if per_node > 1 else None, address, port)
    given = _int(env, "RANK")
    if given is None:
        return None
    rank = given
    world = _required(env, "WORLD_SIZE", f"RANK={rank} is (a PyTorch distribution job)")
    local = _int(env, "LOCAL_RANK")
    per_node = _int(env, "LOCAL_WORLD_SIZE") or devices
    node = _int(env, "NODE_RANK", "GROUP_RANK")
    if node is None:
        node = rank // per_node
    if local is None:
        local = rank - node * per_node
    if per_node < 1 or world % per_node or not 0 <= local < per_node or rank != node * per_node + local:
        raise HimlError(
            f"PyTorch distribution variables do not fit {per_node} processes per machine: RANK={rank}, "
            f"LOCAL_RANK={local}, NODE_RANK={node}, WORLD_SIZE={world} (RANK must be NODE_RANK x "
            f"{per_node} + LOCAL_RANK, WORLD_SIZE a multiple of {per_node}; set --devices or LOCAL_WORLD_SIZE)"
        )
    nodes = world // per_node
    address, port = _master(env, nodes)
    return Cluster("pytorch", nodes, node, per_node, address, port)


def prepare_cluster(devices: int, devices_given: bool = False) -> Cluster | None:
    """Set up this process's environment for the job's machines, as Lightning's own environment reads it.

    From AzureML's variables (see :func:`cluster_from_environ`) this sets
    ``MASTER_ADDR``, ``MASTER_PORT`` (hi-ml's 6105 by default), ``NODE_RANK``,
    ``LOCAL_WORLD_SIZE`` and, for an MPI job of several processes per machine,
    ``LOCAL_RANK``; the processes Lightning starts inherit them. ``devices``
    is how many processes each machine runs unless the launcher says;
    ``devices_given``: the user chose it, so a launcher that says otherwise
    is an error instead of winning.
    """
    cluster = cluster_from_environ(devices=devices)
    if cluster is None:
        return None
    per_node = cluster.processes_per_node or devices
    if devices_given and per_node != devices:
        raise HimlError(
            f"--devices {devices} asks for {devices} processes per machine, but the job's launcher started "
            f"{per_node} ({cluster.style} distribution): leave --devices out or make them agree"
        )
    env = os.environ
    env["MASTER_ADDR"] = cluster.master_addr
    env["MASTER_PORT"] = str(cluster.master_port)
    env["NODE_RANK"] = str(cluster.node_rank)
    env["LOCAL_WORLD_SIZE"] = str(per_node)
    if cluster.style == "mpi" and cluster.processes_per_node is not None:
        env["LOCAL_RANK"] = str(_int(env, "OMPI_COMM_WORLD_LOCAL_RANK") or 0)
    return cluster
