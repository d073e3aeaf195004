"""Options every compute backend shares: defined once, carried in the JobSpec.

``--cluster`` means one thing whichever plugin submits the job: the kernel adds
these options to ``himl run`` and ``himl submit`` and puts their values in the
:class:`~himl_kernel.job.JobSpec` (``job.compute.target``,
``job.compute.num_nodes``, ``job.environment.docker_image``...); a backend
reads them from there and adds only options that are truly its own.

A backend says which of them it honours when it registers::

    registry.add("local", "pkg.mod:LocalBackend", "...", honours=("max_run_duration",))

A job that sets a shared option to something other than its default on a
backend that does not list it is refused in one line before anything is
submitted, rather than silently ignored. A backend that lists nothing is taken
to honour them all.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.job import JobSpec
    from himl_kernel.registry import Entry

Section = Literal["compute", "environment"]


@dataclass(frozen=True)
class SharedOption:
    """One shared option: its name in ``honours``, its flags, and where the JobSpec keeps it.

    Attributes:
        name: the name backends list in ``honours`` (also the argparse destination).
        flags: the option strings; the first is the one messages show.
        help: the ``--help`` line.
        read: the value in a JobSpec.
        default: the value that means "not asked for".
        section: the ``--help`` group it is shown in.
        kwargs: further ``add_argument`` keywords (type, action...).
    """

    name: str
    flags: tuple[str, ...]
    help: str
    read: Callable[[JobSpec], object]
    default: object
    section: Section = "compute"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def add_to(self, group: argparse._ArgumentGroup) -> None:
        kwargs = {"default": self.default, **self.kwargs}
        if kwargs.get("action") == "store_true":
            kwargs.pop("default")
        group.add_argument(*self.flags, dest=self.name, help=self.help, **kwargs)


SHARED_OPTIONS: tuple[SharedOption, ...] = (
    SharedOption(
        "cluster",
        ("--cluster", "--compute-target"),
        "the compute target of the backend (an AzureML cluster, say); empty: the backend's default",
        lambda job: job.compute.target,
        "",
        kwargs={"metavar": "NAME"},
    ),
    SharedOption(
        "num_nodes",
        ("--num-nodes", "--num_nodes"),
        "machines for a distributed job",
        lambda job: job.compute.num_nodes,
        1,
        kwargs={"type": int},
    ),
    SharedOption(
        "processes_per_node",
        ("--processes-per-node", "--processes_per_node"),
        "processes on each machine",
        lambda job: job.compute.processes_per_node,
        1,
        kwargs={"type": int},
    ),
    SharedOption(
        "max_run_duration",
        ("--max-run-duration", "--max_run_duration"),
        "stop the job after this long: 90s, 30m, 2h, 1d",
        lambda job: job.max_run_duration_s,
        None,
        kwargs={"metavar": "DURATION"},
    ),
    SharedOption(
        "no_wait",
        ("--no-wait",),
        "return after submission instead of waiting for the job to end",
        lambda job: not job.wait_for_completion,
        False,
        kwargs={"action": "store_true"},
    ),
    SharedOption(
        "conda_file",
        ("--conda-file", "--conda_env"),
        "conda environment YAML",
        lambda job: job.environment.conda_file,
        None,
        "environment",
        {"type": Path},
    ),
    SharedOption(
        "pip_requirements",
        ("--pip-requirements",),
        "pip requirements file",
        lambda job: job.environment.pip_requirements,
        None,
        "environment",
        {"type": Path},
    ),
    SharedOption(
        "docker_image",
        ("--docker-image", "--docker_base_image"),
        "base docker image",
        lambda job: job.environment.docker_image,
        "",
        "environment",
    ),
    SharedOption(
        "shm_size",
        ("--shm-size", "--docker_shm_size"),
        "shared memory size for the container, e.g. 100g",
        lambda job: job.environment.shm_size,
        "",
        "environment",
    ),
)

SHARED_NAMES = frozenset(option.name for option in SHARED_OPTIONS)


def add_shared_options(compute: argparse._ArgumentGroup, environment: argparse._ArgumentGroup) -> None:
    """Add every shared option to the two ``--help`` groups."""
    for option in SHARED_OPTIONS:
        option.add_to(compute if option.section == "compute" else environment)


def honoured_by(entry: Entry[Any]) -> frozenset[str]:
    """The shared options a registered backend honours (all of them when it declares none)."""
    declared = entry.options.get("honours")
    if declared is None:
        return SHARED_NAMES
    names = frozenset([declared] if isinstance(declared, str) else declared)
    unknown = sorted(names - SHARED_NAMES)
    if unknown:
        raise HimlError(
            f"compute backend {entry.name!r} of {entry.owner} declares honours={', '.join(unknown)}, "
            f"which are not shared options; known: {', '.join(sorted(SHARED_NAMES))}"
        )
    return names


def refuse_unhonoured(job: JobSpec, entry: Entry[Any]) -> None:
    """Refuse, in one line, a shared option set on a backend that cannot honour it."""
    honoured = honoured_by(entry)
    for option in SHARED_OPTIONS:
        value = option.read(job)
        if option.name not in honoured and value != option.default:
            given = " ".join([option.flags[0], _shown(value)]).strip()
            raise HimlError(
                f"{given}: compute backend {entry.name!r} cannot honour it; "
                f"drop it, or choose a backend that can with --compute"
            )


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return ""
    return repr(str(value)) if isinstance(value, Path | str) else str(value)


def names(options: Iterable[SharedOption] = SHARED_OPTIONS) -> list[str]:
    """Every option string of the shared options (for clash checks)."""
    return [flag for option in options for flag in option.flags]
