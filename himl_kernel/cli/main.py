"""The ``himl`` command: core subcommands plus those plugins add.

Parsing is two-phase, as in tox: global flags and the subcommand name first;
then only the chosen subcommand's parser is built (for a plugin command, only
then is its module imported). ``himl --help`` therefore loads plugin
descriptors but no plugin implementation.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from himl_kernel.argparsing import HimlArgumentParser
from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.plugins import PluginHost


@dataclass(frozen=True)
class CoreCommand:
    help: str
    module: str  # has configure(parser) and run(args, host) -> int


CORE_COMMANDS: dict[str, CoreCommand] = {
    "run": CoreCommand("run a model (container) on a compute backend", "himl_kernel.cli.run_cmd"),
    "submit": CoreCommand(
        "run a script on a compute backend: himl submit SCRIPT -- ARGS", "himl_kernel.cli.submit_cmd"
    ),
    "plugins": CoreCommand("list installed plugins and what each contributes", "himl_kernel.cli.info_cmd"),
    "models": CoreCommand("list the models (containers) that `himl run --model` accepts", "himl_kernel.cli.info_cmd"),
    "runs": CoreCommand("list, show, download and aggregate runs in the run store", "himl_kernel.cli.runs_cmd"),
    "tb": CoreCommand("TensorBoard over the logs of runs (local, or located by a plugin)", "himl_kernel.cli.tb_cmd"),
    "checkpoint": CoreCommand(
        "resolve a checkpoint reference (path, URL, RUN_ID:path) to a local file", "himl_kernel.cli.checkpoint_cmd"
    ),
    "doctor": CoreCommand(
        "check what is installed and configured, and how to fix what is missing", "himl_kernel.cli.doctor_cmd"
    ),
}


class _VersionAction(argparse.Action):
    """``--version``: the kernel's version and which installed distribution it is, worked out only when asked."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from himl_kernel.distribution import inspect_kernel

        print(inspect_kernel().version_line())
        parser.exit()


def _top_parser(host: PluginHost | None) -> argparse.ArgumentParser:
    parser = HimlArgumentParser(
        prog="himl",
        description="Run deep-learning experiments here or in the cloud, through plugins.",
        epilog="`himl COMMAND --help` shows a command's options. Plugins: `himl plugins`.",
    )
    parser.add_argument("--version", action=_VersionAction, help="show the version and which distribution it is")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and trace plugin hook calls")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in CORE_COMMANDS.items():
        sub.add_parser(name, help=cmd.help, add_help=False)
    if host is not None:
        for entry in host.commands:
            if entry.name in CORE_COMMANDS:
                continue
            sub.add_parser(entry.name, help=f"{entry.description} [plugin {entry.plugin}]", add_help=False)
    return parser


def _split_global(argv: list[str]) -> tuple[bool, str | None, list[str], list[str]]:
    """(verbose, command, arguments before it, arguments after it)."""
    verbose = False
    before: list[str] = []
    for index, arg in enumerate(argv):
        if arg in ("-v", "--verbose"):
            verbose = True
        elif arg.startswith("-"):
            before.append(arg)
        else:
            return verbose, arg, before, argv[index + 1 :]
    return verbose, None, before, []


def stdout_closed() -> int:
    """The reader of our output went away (``himl runs list | head -1``): stop quietly, as ``cat`` does.

    What is still buffered for stdout is dropped (stdout now goes to the null
    device, so the interpreter's last flush cannot fail), and the exit code is
    the shell's for a process ended by SIGPIPE.
    """
    import os
    import signal

    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 128 + int(getattr(signal, "SIGPIPE", 13))


def main(argv: list[str] | None = None) -> int:
    """The ``himl`` command; ``argv`` defaults to ``sys.argv[1:]``.

    Without ``argv`` this is the command line (the console script, ``python -m
    himl_kernel``), a process that ends when this returns: it loads its big
    libraries and ends without the garbage collector's long passes (see
    :mod:`himl_kernel.heap`). Callers that pass ``argv`` keep their process as it was.
    """
    from himl_kernel import heap

    if argv is None:
        heap.mark_command_line()
    args = list(sys.argv[1:] if argv is None else argv)
    verbose, command, before, rest = _split_global(args)
    try:
        code = _dispatch(verbose, command, before, rest)
        sys.stdout.flush()  # here, where a closed pipe can still be handled, not at interpreter exit
        return code
    except BrokenPipeError:  # `himl run --dry-run | head`: whoever read our output has gone
        return stdout_closed()
    except HimlError as exc:
        if verbose:
            traceback.print_exc()
        from himl_kernel.redact import mask_secrets

        print(f"himl: error: {mask_secrets(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("himl: interrupted", file=sys.stderr)
        return 130
    finally:
        if argv is None:
            heap.prepare_exit()


def _dispatch(verbose: bool, command: str | None, before: list[str], rest: list[str]) -> int:
    from himl_kernel.plugins import build_host

    host = build_host(trace=verbose)
    if command is None:
        parser = _top_parser(host)
        parser.parse_args(before)  # handles --help and --version
        parser.print_help()
        return 0 if not before else 2
    if before:
        _top_parser(host).parse_args(before)
    configure: Callable[[argparse.ArgumentParser], None]
    runner: Callable[[argparse.Namespace, PluginHost], int]
    if command in CORE_COMMANDS:
        import importlib

        module = importlib.import_module(CORE_COMMANDS[command].module)
        configure = partial(getattr(module, f"configure_{command}"), host=host)
        runner = getattr(module, f"run_{command}")
        help_line = CORE_COMMANDS[command].help
        add_help = command not in ("run",)  # `himl run --model X --help` shows the model's fields
    else:
        if command not in host.commands:
            known = [*CORE_COMMANDS, *host.commands.names()]
            from himl_kernel.errors import UnknownNameError

            notes = [p.describe() for p in host.broken]
            raise UnknownNameError("command", command, known, hint="; ".join(notes))
        entry = host.commands.entry(command)
        host.require_plugin(entry.plugin)
        obj = entry.load()
        plugin_command = obj() if isinstance(obj, type) else obj
        configure, runner = plugin_command.configure, plugin_command.run
        help_line = entry.description
        add_help = True
    parser = HimlArgumentParser(prog=f"himl {command}", description=help_line, add_help=add_help)
    parser.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)
    configure(parser)
    # Everything after ``--`` belongs to the job (``himl submit script.py -- ARGS``);
    # a command that takes it sets ``passthrough`` as a default.
    tail: list[str] = []
    if "--" in rest:
        cut = rest.index("--")
        rest, tail = rest[:cut], rest[cut + 1 :]
    # A command that takes free-form arguments (``himl run``: the model's own
    # fields) sets ``extra_args`` as a default and receives what is left.
    namespace, extra = parser.parse_known_args(rest)
    if hasattr(namespace, "passthrough"):
        namespace.passthrough = tail
    elif tail:
        parser.error(f"takes no arguments after --, got: {' '.join(tail)}")
    if hasattr(namespace, "extra_args"):
        namespace.extra_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    namespace.verbose = verbose or getattr(namespace, "verbose", False)
    return int(runner(namespace, host))
