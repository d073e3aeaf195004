"""``himl run --model NAME [options] [--field value ...]``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from himl_kernel.argparsing import HimlArgumentParser
from himl_kernel.cli.job_options import add_job_options, build_job, default_compute, exit_code_of, submit_job

if TYPE_CHECKING:
    from himl_kernel.plugins import PluginHost


_MODEL_HELP = "the model (container) to run; see `himl models`"
_CONFIG_HELP = "YAML file of the model's fields (overridden by options); a run's outputs/config.yaml is one"


def configure_run(parser: argparse.ArgumentParser, host: PluginHost) -> None:
    parser.add_argument("--model", required=False, default="", help=_MODEL_HELP)
    parser.add_argument("--config", type=Path, default=None, help=_CONFIG_HELP)
    parser.set_defaults(extra_args=[])
    parser.epilog = "The model's own fields are options too: `himl run --model NAME --help` lists them."


def taken_options(parser: argparse.ArgumentParser, host: PluginHost) -> dict[str, str]:
    """Every option string ``himl run`` already gives a meaning, with who owns it.

    ``parser`` holds the job options as :func:`add_job_options` built them; the
    plugins' options are named by :attr:`PluginHost.option_owners`.
    """
    taken = {"--model": "himl run", "--config": "himl run", "--help": "himl run", "-h": "himl run"}
    for action in parser._actions:
        for option in action.option_strings:
            taken[option] = "himl run"
    for option, plugin in getattr(host, "option_owners", {}).items():
        taken[option] = f"plugin {plugin}"
    return taken


def run_run(args: argparse.Namespace, host: PluginHost) -> int:
    from himl_kernel.errors import HimlError
    from himl_kernel.fields import build_parser, check_option_clashes
    from himl_kernel.job import Entry
    from himl_kernel.runner import load_container, return_to_launch_folder, run_container

    # a process a running container started (a DDP worker re-running this command) reads
    # its command line where the job started, not in the outputs folder the container runs in
    return_to_launch_folder()
    # Second phase: the job options (with the plugins' own) from what is left.
    parser = HimlArgumentParser(prog="himl run", add_help=False)
    add_job_options(parser, host, "run")
    job_args, field_args = parser.parse_known_args(args.extra_args)
    wants_help = any(a in ("-h", "--help") for a in field_args)
    if not args.model:
        if wants_help:
            print(_run_help(host))
            return 0
        raise HimlError("himl run: --model is required; `himl models` lists the models")
    from himl_kernel import heap

    with heap.loading():  # the model's module imports its libraries (torch, Lightning...)
        cls = host.containers.get(args.model)
    # a field named like an option of himl run or a plugin would never reach the model
    check_option_clashes(cls, taken_options(parser, host), model_name=args.model)
    if wants_help:
        print(f"usage: himl run --model {args.model} [--config FILE] [options] [model fields]\n")
        parser.print_help()
        print()
        print(build_parser(cls, f"himl run --model {args.model}").format_help())
        return 0

    import os

    from himl_kernel.runinfo import check_wire_format

    check_wire_format(os.environ)  # a job from a himl whose wire format this one cannot read stops here
    inside = host.detect_run()
    container = load_container(host, args.model, field_args, config_file=args.config)
    if inside is not None:  # we are the job: run the model here, as that run
        run_container(host, container, inside)
        return 0

    from himl_kernel.fields import non_default_arguments

    default_compute(job_args, host)  # --cluster alone means AzureML, as in hi-ml's runner
    if getattr(container, "log_from_vm", False) is True and job_args.compute in (None, "local"):
        from himl_kernel.current import LOG_FROM_VM_LOGGER, add_logger

        # hi-ml's --log_from_vm: a run on this machine is mirrored in the AzureML workspace; a job
        # in AzureML logs there already, so the flag has nothing more to do for one
        add_logger(host, LOG_FROM_VM_LOGGER, "--log_from_vm")
    nodes = container.default_num_nodes()
    if nodes is not None and not _given(args.extra_args, "--num_nodes", "--num-nodes"):
        job_args.num_nodes = nodes  # a hi-ml container's self.num_nodes; the command line wins
    entry = Entry("container", args.model, non_default_arguments(container))
    job = build_job(
        job_args,
        host,
        entry=entry,
        experiment=args.model,
        input_datasets=container.get_input_datasets(),
        output_datasets=container.get_output_datasets(),
        sweep=container.get_sweep(),
        tags={"himl.model": args.model, **container.get_tags()},
    )
    return exit_code_of(submit_job(job, host, job_args.dry_run))


def _given(argv: list[str], *options: str) -> bool:
    """Whether one of ``options`` is on the command line (``--opt value`` or ``--opt=value``)."""
    return any(arg in options or arg.split("=", 1)[0] in options for arg in argv)


def _run_help(host: PluginHost) -> str:
    """``himl run --help``: the command's own options, then the job options."""
    parser = HimlArgumentParser(
        prog="himl run",
        add_help=False,
        usage="himl run --model NAME [--config FILE] [options] [model fields]",
        epilog="The model's own fields are options too: `himl run --model NAME --help` lists them.",
    )
    own = parser.add_argument_group("the model")
    own.add_argument("--model", metavar="NAME", help=_MODEL_HELP)
    own.add_argument("--config", metavar="FILE", help=_CONFIG_HELP)
    own.add_argument("-h", "--help", action="store_true", help="this help; with --model NAME, the model's fields too")
    add_job_options(parser, host, "run")
    return parser.format_help()
