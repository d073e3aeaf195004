"""``submit_if_needed``: one call that makes a script a himl job.

The counterpart of hi-ml's ``submit_to_azure_if_needed``. Put it at the top of
a script, before it parses its own arguments::

    from himl_kernel import submit_if_needed, log_metrics

    run_info = submit_if_needed(input_datasets=["my_dataset"])
    data_folder = run_info.input_datasets[0]

- Inside a job (any backend's environment), it returns that job's RunInfo.
- Run plainly (``python script.py``), it records a local run in the run store,
  in this process, and returns its RunInfo.
- Given a backend (``compute="azureml"``, ``--himl-compute NAME`` anywhere on
  the command line, or a backend's own flag such as ``--azureml``), it submits
  the script with its arguments through that backend and exits with the job's
  status. Those flags are removed from ``sys.argv`` first, so the script's own
  parser never sees them.
"""

from __future__ import annotations

import argparse
import atexit
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.datasets import DatasetConfig
    from himl_kernel.plugins import PluginHost
    from himl_kernel.runinfo import RunInfo
    from himl_kernel.sweep import Sweep

COMPUTE_FLAG = "--himl-compute"

#: Each keyword of :func:`submit_if_needed` that a job option of ``himl run`` /
#: ``himl submit`` also sets, with that option's destination. The keywords are
#: applied to the job options' own namespace (parsed from no arguments, so
#: every default comes from the options' definition) and the JobSpec is built
#: from it by the same ``build_job`` as the commands use; a test fails when a
#: job option or a keyword is added without the other.
JOB_OPTION_OF_KEYWORD: dict[str, str] = {
    "compute": "compute",
    "snapshot_root": "snapshot_root",
    "conda_environment_file": "conda_file",
    "pip_requirements_file": "pip_requirements",
    "docker_image": "docker_image",
    "docker_shm_size": "shm_size",
    "environment_variables": "env",
    "compute_target": "cluster",
    "num_nodes": "num_nodes",
    "processes_per_node": "processes_per_node",
    "tags": "tag",
    "experiment": "experiment",
    "display_name": "display_name",
    "max_run_duration_s": "max_run_duration",
    "wait_for_completion": "no_wait",
}
#: Keywords no job option has: what only a script in code can say.
SCRIPT_ONLY_KEYWORDS = (
    "entry_script",
    "input_datasets",
    "output_datasets",
    "default_datastore",
    "sweep",
    "host",
    "argv",
)
#: Job options no keyword has: they only make sense on a command line.
COMMAND_LINE_ONLY_OPTIONS = ("dry_run", "max_parallel")


def pop_backend_flags(argv: list[str], host: PluginHost) -> str | None:
    """Remove ``--himl-compute NAME`` and backends' script flags from ``argv``; return the backend named."""
    chosen: str | None = None
    flags = {e.options["script_flag"]: e.name for e in host.compute_backends if e.options.get("script_flag")}
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg == COMPUTE_FLAG:
            if index + 1 >= len(argv):
                raise HimlError(
                    f"{COMPUTE_FLAG} needs a backend name; known: {', '.join(host.compute_backends.names())}"
                )
            chosen = argv[index + 1]
            del argv[index : index + 2]
        elif arg.startswith(COMPUTE_FLAG + "="):
            chosen = arg.split("=", 1)[1]
            del argv[index]
        elif arg in flags:
            chosen = flags[arg]
            del argv[index]
        else:
            index += 1
    if chosen is not None:
        host.compute_backends.entry(chosen)  # unknown names fail here, listing the known ones
    return chosen


def _datasets(values: Sequence[Any] | None, default_datastore: str) -> list[DatasetConfig]:
    from himl_kernel.datasets import DatasetConfig

    return [DatasetConfig.from_value(v, default_datastore) for v in values or []]


def submit_if_needed(
    *,
    compute: str | None = None,
    entry_script: str | Path | None = None,
    snapshot_root: str | Path | None = None,
    input_datasets: Sequence[DatasetConfig | str | Path | dict[str, Any]] | None = None,
    output_datasets: Sequence[DatasetConfig | str | Path | dict[str, Any]] | None = None,
    default_datastore: str = "",
    conda_environment_file: str | Path | None = None,
    pip_requirements_file: str | Path | None = None,
    docker_image: str = "",
    docker_shm_size: str = "",
    environment_variables: dict[str, str] | None = None,
    compute_target: str = "",
    num_nodes: int = 1,
    processes_per_node: int = 1,
    tags: dict[str, str] | None = None,
    experiment: str = "",
    display_name: str = "",
    sweep: Sweep | None = None,
    max_run_duration_s: float | None = None,
    wait_for_completion: bool = True,
    host: PluginHost | None = None,
    argv: list[str] | None = None,
) -> RunInfo:
    """Return the current run, starting one here or submitting the script elsewhere.

    Args:
        compute: the backend to submit to; None lets the command line decide
            (``--himl-compute NAME`` or a backend flag), else the script runs here.
        entry_script: the script to submit (default: ``sys.argv[0]``).
        snapshot_root: the folder the job receives (default: the current folder).
        input_datasets: datasets to read: DatasetConfigs, names, or folders.
        output_datasets: datasets to write, likewise.
        default_datastore: the datastore for datasets given by name.
        conda_environment_file: a conda YAML for remote jobs.
        pip_requirements_file: a pip requirements file for remote jobs.
        docker_image: a base image for remote jobs.
        docker_shm_size: shared memory for the job's container, e.g. ``"100g"``.
        environment_variables: variables set inside the job.
        compute_target: the backend's compute target (a cluster name).
        num_nodes: machines for a distributed job.
        processes_per_node: processes per machine.
        tags: tags on the run.
        experiment: the experiment name (default: the script's name).
        display_name: the run's name.
        sweep: run the script once per trial, each receiving ``--name value``.
        max_run_duration_s: stop the job after this many seconds.
        wait_for_completion: wait for a submitted job to end.
        host: the plugin host (default: a fresh one with installed plugins).
        argv: the command line to read and edit (default: ``sys.argv``).
    """
    import os

    from himl_kernel.current import activate
    from himl_kernel.dataset_prep import prepare_datasets
    from himl_kernel.errors import install_one_line_excepthook
    from himl_kernel.plugins import build_host
    from himl_kernel.runinfo import check_wire_format

    install_one_line_excepthook()  # a script that does not catch our errors ends with their one line

    check_wire_format(os.environ)  # a job from a himl whose wire format this one cannot read stops here
    host = host or build_host()
    inside = host.detect_run()
    argv = sys.argv if argv is None else argv
    inputs = _datasets(input_datasets, default_datastore)
    outputs = _datasets(output_datasets, default_datastore)
    if inside is not None:
        pop_backend_flags(argv, host)  # the job's command line may still carry them
        # A job submitted without these datasets (``himl submit script.py``)
        # gets them now, from the providers, as the script asked for them.
        if inputs and not inside.input_datasets:
            inside.input_datasets = prepare_datasets(host, inputs, role="input", run=inside)
        if outputs and not inside.output_datasets:
            inside.output_datasets = prepare_datasets(host, outputs, role="output", run=inside)
        activate(inside, host)
        return inside

    backend = compute or pop_backend_flags(argv, host)
    script = Path(entry_script or argv[0]).resolve()
    name = experiment or script.stem
    if backend is None:
        return _run_here(host, name, display_name or script.name, inputs, outputs, tags or {})

    from himl_kernel.cli.job_options import build_job, submit_job
    from himl_kernel.job import Entry

    if max_run_duration_s is not None and not max_run_duration_s > 0:
        raise HimlError(f"submit_if_needed: max_run_duration_s must be positive, got {max_run_duration_s}")
    root = Path(snapshot_root or Path.cwd()).resolve()
    try:
        target = str(script.relative_to(root))
    except ValueError:
        raise HimlError(f"entry script {str(script)!r} is not inside the snapshot root {str(root)!r}") from None
    options = job_options(
        host,
        {
            "compute": backend,
            "snapshot_root": root,
            "conda_environment_file": Path(conda_environment_file) if conda_environment_file else None,
            "pip_requirements_file": Path(pip_requirements_file) if pip_requirements_file else None,
            "docker_image": docker_image,
            "docker_shm_size": docker_shm_size,
            "environment_variables": [f"{k}={v}" for k, v in (environment_variables or {}).items()],
            "compute_target": compute_target,
            "num_nodes": num_nodes,
            "processes_per_node": processes_per_node,
            "tags": [],  # given to build_job as a mapping, below
            "experiment": name,
            "display_name": display_name,
            "max_run_duration_s": f"{max_run_duration_s:.6f}s" if max_run_duration_s is not None else "",
            "wait_for_completion": not wait_for_completion,
        },
    )
    job = build_job(
        options,
        host,
        entry=Entry("script", target, argv[1:]),
        experiment=name,
        input_datasets=inputs,
        output_datasets=outputs,
        sweep=sweep,
        tags=dict(tags or {}),
    )
    submission = submit_job(job, host, dry_run=False)
    assert submission is not None
    print(f"himl: submitted to {backend}: run {submission.run_id} {submission.url}".rstrip(), file=sys.stderr)
    raise SystemExit(0 if submission.succeeded else (submission.exit_code or 1))


def job_options(host: PluginHost, keywords: dict[str, Any]) -> argparse.Namespace:
    """The job options ``himl submit`` would parse, with ``keywords`` of :func:`submit_if_needed` set on them."""
    from himl_kernel.argparsing import HimlArgumentParser
    from himl_kernel.cli.job_options import add_job_options

    parser = HimlArgumentParser(prog="submit_if_needed", add_help=False)
    add_job_options(parser, host, "submit")
    options = parser.parse_args([])  # every default as the options define it, the plugins' too
    for keyword, value in keywords.items():
        setattr(options, JOB_OPTION_OF_KEYWORD[keyword], value)
    return options


def _run_here(
    host: PluginHost,
    experiment: str,
    name: str,
    inputs: list[DatasetConfig],
    outputs: list[DatasetConfig],
    tags: dict[str, str],
) -> RunInfo:
    """Record this process as a local run, finished when the interpreter exits."""
    from himl_kernel.current import activate, deactivate
    from himl_kernel.dataset_prep import prepare_datasets
    from himl_kernel.runinfo import RunInfo
    from himl_kernel.runstore import RunStore

    input_folders = prepare_datasets(host, inputs, role="input")
    output_folders = prepare_datasets(host, outputs, role="output")
    store = RunStore()
    stored = store.create_run(experiment, name, tags={**tags, "himl.backend": "local", "himl.entry": f"script:{name}"})
    out_dir, logs_dir = store.folders(stored)
    info = RunInfo(
        run_id=stored.run_id,
        backend="local",
        output_folder=out_dir,
        logs_folder=logs_dir,
        input_datasets=input_folders,
        output_datasets=output_folders,
        is_remote=False,
        tracking_uri=store.tracking_uri,
    )
    active = activate(info, host)
    failed: list[bool] = []
    previous_hook = sys.excepthook

    def note_failure(*exc_info: Any) -> None:
        failed.append(True)
        previous_hook(*exc_info)

    sys.excepthook = note_failure

    def finish() -> None:
        deactivate(active)
        store.finish(info.run_id, "FAILED" if failed else "FINISHED")

    atexit.register(finish)
    print(f"himl: run {info.run_id} started here; outputs in {info.output_folder}", file=sys.stderr)
    return info
