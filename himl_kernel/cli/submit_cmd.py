"""``himl submit SCRIPT [options] -- ARGS``: run a script as a job."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from himl_kernel.cli.job_options import add_job_options, build_job, exit_code_of, submit_job

if TYPE_CHECKING:
    from himl_kernel.plugins import PluginHost


def configure_submit(parser: argparse.ArgumentParser, host: PluginHost) -> None:
    parser.add_argument("script", help="the script (or, with --module, the module) to run")
    parser.set_defaults(passthrough=[])
    parser.epilog = "The script's own arguments come after --: himl submit train.py -- --epochs 3"
    parser.add_argument("--module", action="store_true", help="SCRIPT is a module name, run as python -m")
    parser.add_argument(
        "--input-dataset",
        action="append",
        default=[],
        metavar="NAME_OR_FOLDER",
        help="an input dataset: a local folder, or a dataset name (repeatable)",
    )
    parser.add_argument(
        "--output-dataset",
        action="append",
        default=[],
        metavar="NAME_OR_FOLDER",
        help="an output dataset: a local folder, or a dataset name (repeatable)",
    )
    parser.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="sweep a parameter over values, passed to the script as --NAME V (repeatable: a grid)",
    )
    add_job_options(parser, host, "submit")


def _dataset(value: str) -> object:
    from himl_kernel.datasets import DatasetConfig

    path = Path(value)
    if "/" in value or value.startswith(".") or path.is_dir():
        return DatasetConfig(name=path.name, local_folder=path)
    return DatasetConfig(name=value)


def run_submit(args: argparse.Namespace, host: PluginHost) -> int:
    from himl_kernel.errors import HimlError
    from himl_kernel.job import Entry
    from himl_kernel.sweep import Sweep

    root = (args.snapshot_root or Path.cwd()).resolve()
    if args.module:
        entry = Entry("module", args.script, args.passthrough)
        experiment = args.script.rsplit(".", 1)[-1]
    else:
        script = Path(args.script)
        resolved = (script if script.is_absolute() else Path.cwd() / script).resolve()
        if not resolved.is_file():
            raise HimlError(f"script {args.script!r} does not exist")
        try:
            target = str(resolved.relative_to(root))
        except ValueError:
            target = str(resolved)
        entry = Entry("script", target, args.passthrough)
        experiment = resolved.stem
    sweep = None
    if args.sweep:
        parameters: dict[str, list[str]] = {}
        for item in args.sweep:
            name, sep, values = item.partition("=")
            if not sep or not name or not values:
                raise HimlError(f"--sweep: {item!r} should look like NAME=V1,V2")
            parameters[name] = values.split(",")
        sweep = Sweep(parameters=parameters)
    job = build_job(
        args,
        host,
        entry=entry,
        experiment=experiment,
        input_datasets=[_dataset(v) for v in args.input_dataset],  # type: ignore[misc]
        output_datasets=[_dataset(v) for v in args.output_dataset],  # type: ignore[misc]
        sweep=sweep,
    )
    return exit_code_of(submit_job(job, host, args.dry_run))
