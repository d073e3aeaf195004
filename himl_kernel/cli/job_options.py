"""Options shared by ``himl run`` and ``himl submit``, and the JobSpec they build."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from himl_kernel.errors import HimlError
from himl_kernel.job import parse_duration

if TYPE_CHECKING:
    from himl_kernel.datasets import DatasetConfig
    from himl_kernel.job import Entry, JobSpec, Submission
    from himl_kernel.plugins import PluginHost
    from himl_kernel.sweep import Sweep


def parse_pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HimlError(f"{option}: {item!r} should look like KEY=VALUE")
        pairs[key] = value
    return pairs


def split_tags(values: list[str] | None) -> tuple[dict[str, str], str]:
    """``--tag`` values as KEY=VALUE tags, and hi-ml's free-text tag (a value without ``=``; empty if none).

    hi-ml's runner takes ``--tag my_first_run`` as the run's display name;
    himl keeps that text as the display name (unless ``--display-name`` is
    given) and as the tag ``tag``. Two free-text tags are one line.
    """
    pairs: dict[str, str] = {}
    free: list[str] = []
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep:
            if not item.strip():
                raise HimlError("--tag: an empty tag; give KEY=VALUE or a free-text tag")
            free.append(item.strip())
        elif not key:
            raise HimlError(f"--tag: {item!r} should look like KEY=VALUE")
        else:
            pairs[key] = value
    if len(free) > 1:
        raise HimlError(f"--tag: one free-text tag (the run's display name) is allowed, got {free}")
    return pairs, free[0] if free else ""


def add_job_options(parser: argparse.ArgumentParser, host: PluginHost, command: str) -> None:
    """The kernel's job options, the shared compute options, then each plugin's own group."""
    from himl_kernel.shared_options import add_shared_options

    group = parser.add_argument_group("where and how the job runs")
    cluster_default = "; azureml with --cluster, as hi-ml's runner" if command == "run" else ""
    compute_help = f"compute backend (default: local{cluster_default})"
    group.add_argument("--compute", default=None, metavar="BACKEND", help=compute_help)
    group.add_argument("--dry-run", action="store_true", help="print what the backend would receive, and stop")
    group.add_argument("--experiment", default="", help="experiment name (default: the model or script name)")
    group.add_argument("--display-name", default="", help="the run's display name")
    group.add_argument(
        "--tag",
        action="append",
        metavar="KEY=VALUE",
        help="a tag on the run (repeatable); a value without '=' is hi-ml's free-text tag: the run's display name",
    )
    group.add_argument("--env", action="append", metavar="KEY=VALUE", help="an environment variable for the job")
    group.add_argument("--max-parallel", type=int, default=None, help="trials of a sweep that run at once")
    group.add_argument("--snapshot-root", type=Path, default=None, help="the folder the job receives (default: .)")
    if command == "run":
        group.add_argument(
            "--strictly_aml_v1",
            "--strictly-aml-v1",
            dest="strictly_aml_v1",
            action="store_true",
            help=f"with --cluster: submit through the AzureML SDK v1 (backend {V1_BACKEND!r}, {V1_BACKEND_PLUGIN})",
        )
    env = parser.add_argument_group("software environment")
    add_shared_options(group, env)
    host.add_options(parser, command)


#: The backend ``himl run --cluster NAME`` submits to when ``--compute`` is not given (hi-ml's runner: AzureML).
CLUSTER_BACKEND = "azureml"
#: The plugin distribution that provides it.
CLUSTER_BACKEND_PLUGIN = "himl-azure-v2"
#: The backend of hi-ml's ``--strictly_aml_v1`` (AzureML SDK v1), and its plugin distribution.
V1_BACKEND = "azureml-v1"
V1_BACKEND_PLUGIN = "himl-azure-v1"


def default_compute(args: argparse.Namespace, host: PluginHost) -> None:
    """``--compute`` for ``himl run`` when not given: ``azureml`` with ``--cluster``, else ``local``.

    hi-ml's runner submits to AzureML whenever a cluster is named; so does
    ``himl run``. Without an ``azureml`` backend installed that is one line
    saying which plugin to install. ``--strictly_aml_v1`` (hi-ml's) picks the
    SDK v1 backend instead, refused in one line while it is not installed.
    """
    if getattr(args, "strictly_aml_v1", False):
        _choose_v1(args, host)
        return
    if args.compute is not None:
        return
    if not args.cluster:
        args.compute = "local"
        return
    if CLUSTER_BACKEND not in host.compute_backends:
        raise HimlError(
            f"--cluster {args.cluster!r} without --compute submits to AzureML, but no compute backend "
            f"{CLUSTER_BACKEND!r} is installed: pip install {CLUSTER_BACKEND_PLUGIN} (`himl plugins` shows one that "
            "failed to load); or name the backend with --compute"
        )
    args.compute = CLUSTER_BACKEND


def _choose_v1(args: argparse.Namespace, host: PluginHost) -> None:
    """``--strictly_aml_v1``: the SDK v1 backend, or one line saying why it cannot be had."""
    if args.compute is not None and args.compute != V1_BACKEND:
        raise HimlError(f"--strictly_aml_v1 submits with backend {V1_BACKEND!r}, but --compute names {args.compute!r}")
    if args.compute is None and not args.cluster:
        raise HimlError("--strictly_aml_v1 chooses the AzureML SDK v1 for a submission: give --cluster NAME too")
    if V1_BACKEND not in host.compute_backends:
        raise HimlError(
            f"--strictly_aml_v1 needs the AzureML SDK v1 backend {V1_BACKEND!r}, which is not installed: "
            f"pip install {V1_BACKEND_PLUGIN} (`himl plugins` shows one that failed to load)"
        )
    args.compute = V1_BACKEND


def build_job(
    args: argparse.Namespace,
    host: PluginHost,
    *,
    entry: Entry,
    experiment: str,
    input_datasets: list[DatasetConfig] | None = None,
    output_datasets: list[DatasetConfig] | None = None,
    sweep: Sweep | None = None,
    tags: dict[str, str] | None = None,
) -> JobSpec:
    from himl_kernel.job import Compute, Environment, JobSpec
    from himl_kernel.snapshot import Snapshot

    if args.compute is None:
        args.compute = "local"
    host.compute_backends.entry(args.compute)  # unknown backend: fail now, listing the known ones
    if sweep is not None and args.max_parallel is not None:
        if args.max_parallel < 1:
            raise HimlError(f"--max-parallel must be at least 1, got {args.max_parallel}")
        sweep.max_parallel = args.max_parallel
    tag_pairs, free_tag = split_tags(args.tag)
    job = JobSpec(
        entry=entry,
        snapshot=Snapshot(args.snapshot_root or Path.cwd()),
        environment=Environment(
            conda_file=args.conda_file,
            pip_requirements=args.pip_requirements,
            docker_image=args.docker_image,
            shm_size=args.shm_size,
        ),
        compute=Compute(
            backend=args.compute,
            target=args.cluster,
            num_nodes=args.num_nodes,
            processes_per_node=args.processes_per_node,
        ),
        input_datasets=list(input_datasets or []),
        output_datasets=list(output_datasets or []),
        env_vars=parse_pairs(args.env, "--env"),
        tags={**(tags or {}), **tag_pairs, **({"tag": free_tag} if free_tag else {})},
        experiment=args.experiment or experiment,
        display_name=args.display_name or free_tag,
        sweep=sweep,
        max_run_duration_s=parse_duration(args.max_run_duration) if args.max_run_duration else None,
        wait_for_completion=not args.no_wait,
    )
    host.configure_job(job, args)
    return job


def submit_job(job: JobSpec, host: PluginHost, dry_run: bool) -> Submission | None:
    """Hand the job to its backend (or print it, for a dry run).

    A shared option the backend does not honour (``--cluster`` for ``local``)
    is refused first, in one line.
    """
    from himl_kernel.shared_options import refuse_unhonoured

    refuse_unhonoured(job, host.compute_backends.entry(job.compute.backend))
    backend = host.backend(job.compute.backend)
    if dry_run:
        print(backend.render(job, host))
        return None
    submission = backend.submit(job, host)
    host.job_submitted(job, submission)
    if submission.url:
        print(f"himl: {job.compute.backend} run {submission.run_id}: {submission.url}", file=sys.stderr)
    return submission


def exit_code_of(submission: Submission | None) -> int:
    if submission is None:
        return 0
    if submission.exit_code:
        return submission.exit_code
    return 0 if submission.succeeded else 1
