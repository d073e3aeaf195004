"""What every cloud backend decides the same way from a JobSpec: the distributed launch and the run's tags.

The AzureML SDK v1 and v2 plugins (and any other backend) turn the answer into
their own SDK's objects; the decision itself lives here once. Nothing here
imports an SDK.

After a submission, the run's id goes to ``most_recent_run.txt`` (hi-ml's run
recovery file) in the folder the submission was made from.

Distributed launch, when ``kind`` is ``auto`` (hi-ml's rule):

- one node with one process: no distributed configuration;
- a container: MPI with one process per node (Lightning starts one process per GPU itself);
- a script with one process per node on several nodes: MPI, one process per node;
- a script with several processes per node: PyTorch's launcher, ``processes_per_node`` each.

``mpi``, ``pytorch`` and ``none`` force the choice; ``mpi_single_node`` asks for
MPI on a single node too (hi-ml's ``use_mpi_run_for_single_node_jobs``).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from himl_kernel.job import JobSpec

DistributionKind = Literal["auto", "mpi", "pytorch", "none"]


@dataclass(frozen=True)
class Launch:
    """How a job's processes are started.

    Attributes:
        kind: ``mpi`` or ``pytorch``.
        nodes: the node count.
        processes_per_node: processes started on each node by the launcher.
    """

    kind: Literal["mpi", "pytorch"]
    nodes: int
    processes_per_node: int

    @property
    def process_count(self) -> int:
        """All processes of the job."""
        return self.nodes * self.processes_per_node


def distributed_launch(spec: JobSpec, kind: DistributionKind = "auto", mpi_single_node: bool = False) -> Launch | None:
    """The launch ``spec`` needs (see the module docstring), or None for a plain single process."""
    nodes, per_node = spec.compute.num_nodes, spec.compute.processes_per_node
    if kind == "none" or (kind == "auto" and nodes == 1 and per_node == 1 and not mpi_single_node):
        return None
    if kind == "auto":
        kind = "mpi" if spec.entry.kind == "container" or per_node == 1 else "pytorch"
    if kind == "mpi":
        return Launch("mpi", nodes, 1 if spec.entry.kind == "container" else per_node)
    return Launch("pytorch", nodes, per_node)


def himl_tags(spec: JobSpec, backend: str) -> dict[str, str]:
    """The run's tags: the JobSpec's, and what himl needs to recognise the run later (backend, entry, command)."""
    return {
        **spec.tags,
        "himl.backend": backend,
        "himl.entry": f"{spec.entry.kind}:{spec.entry.target}",
        "himl.command": shlex.join([spec.entry.target, *spec.entry.args]),
    }


#: hi-ml's run recovery file: the id of the latest submission, in the folder it was made from.
RUN_RECOVERY_FILE = "most_recent_run.txt"


def write_run_recovery_file(run_id: str, folder: Path | None = None) -> Path:
    """Write ``run_id`` to ``most_recent_run.txt`` in ``folder`` (default: the current one).

    A folder that cannot be written is a warning on stderr, not an error: the job has been submitted.
    """
    from himl_kernel.atomic import atomic_write_bytes

    target = (folder or Path.cwd()) / RUN_RECOVERY_FILE
    try:
        atomic_write_bytes(target, run_id.encode("utf-8"))
    except OSError as exc:
        print(f"himl: warning: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
    return target
