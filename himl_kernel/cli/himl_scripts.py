"""hi-ml's console scripts, ``himl-runner``, ``himl-tb`` and ``himl-download``, on top of ``himl``.

Each takes hi-ml's flags and becomes one or more ``himl`` commands:

- ``himl-runner ARGS`` is ``himl run ARGS`` (``--model``, ``--cluster``, ``--num_nodes``,
  ``--conda_env`` and the container's fields are ``himl run``'s own options);
- ``himl-tb`` is ``himl tb RUN_ID...``, ``--port`` and ``--log_dir`` (where the logs are
  fetched to) passed on;
- ``himl-download`` is ``himl runs download RUN_ID --dest OUTPUT_FOLDER/RUN_ID`` for each run,
  ``--prefix`` becoming ``--path`` (only the artifacts under it).

The runs are named as hi-ml names them, exactly one of: ``--run`` (one id, or several
separated by commas), ``--latest_run_file`` (a file holding a run id, as a job writes it),
or ``--experiment`` (its latest ``--num_runs`` runs, optionally only those with ``--tags``
``key=value``). Bad values are one line and exit code 2. This module imports only
``argparse`` until a command runs, so ``--help`` stays light.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from himl_kernel.argparsing import HimlArgumentParser
from himl_kernel.errors import HimlError

#: A tag key or value the run store may be filtered by: no quotes, no control characters.
_TAG_KEY = re.compile(r"[A-Za-z0-9_.\-/ ]+")
_TAG_VALUE = re.compile(r"[^'\"\\\x00-\x1f]*")
_RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]*")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number up to 65535, got {value}")
    return value


def _add_run_selection(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--run", default="", metavar="ID[,ID...]", help=f"the run(s) to {what}, comma-separated")
    group.add_argument(
        "--latest_run_file", type=Path, default=None, metavar="FILE", help="a file that holds the run id"
    )
    group.add_argument("--experiment", default="", metavar="NAME", help=f"{what} this experiment's latest run(s)")
    parser.add_argument(
        "--tags",
        action="append",
        default=[],
        metavar="NAME=VALUE[,NAME=VALUE...]",
        help="with --experiment: only runs carrying these tags",
    )


def _split_ids(text: str, where: str) -> list[str]:
    ids = [part.strip() for part in text.split(",")]
    if not all(ids):
        raise HimlError(f"{where} {text!r}: expected run ids separated by commas, with none empty")
    for run_id in ids:
        if not _RUN_ID.fullmatch(run_id):
            raise HimlError(f"{where}: {run_id!r} is not a run id (letters, digits, '_', '-', '.', ':')")
    return ids


def _tag_filter(values: Sequence[str]) -> str:
    clauses = []
    for value in values:
        for item in value.split(","):
            key, equals, tag = item.partition("=")
            key = key.strip()
            if not equals or not _TAG_KEY.fullmatch(key) or not _TAG_VALUE.fullmatch(tag):
                raise HimlError(f"--tags {item!r}: expected NAME=VALUE, without quotes or backslashes")
            name = f"tags.`{key}`" if not re.fullmatch(r"\w+", key) else f"tags.{key}"
            clauses.append(f"{name} = '{tag}'")
    return " and ".join(clauses)


def selected_runs(args: argparse.Namespace, num_runs: int = 1) -> list[str]:
    """The run ids the hi-ml flags name (``--run``, ``--latest_run_file`` or ``--experiment``)."""
    if args.tags and not args.experiment:
        raise HimlError("--tags filters the runs of --experiment; give --experiment NAME too")
    if args.run:
        return _split_ids(args.run, "--run")
    if args.latest_run_file is not None:
        path: Path = args.latest_run_file
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise HimlError(f"--latest_run_file {str(path)!r}: cannot read it ({reason})") from None
        if not text:
            raise HimlError(f"--latest_run_file {str(path)!r} is empty: expected the id of a run")
        return _split_ids(text, f"--latest_run_file {str(path)!r}")
    from himl_kernel.runstore import RunStore

    runs = RunStore().list_runs(args.experiment, max_results=num_runs, filter_string=_tag_filter(args.tags))
    if not runs:
        tags = f" with tags {', '.join(args.tags)}" if args.tags else ""
        raise HimlError(f"experiment {args.experiment!r} has no runs{tags}")
    return [run.run_id for run in runs]


def _tb_parser() -> argparse.ArgumentParser:
    parser = HimlArgumentParser(prog="himl-tb", description="TensorBoard over runs' logs (himl tb).")
    _add_run_selection(parser, "show")
    parser.add_argument("--num_runs", type=_positive, default=1, metavar="N", help="with --experiment: how many runs")
    parser.add_argument("--port", type=_port, default=6006, help="port TensorBoard listens on (default: 6006)")
    parser.add_argument("--log_dir", type=Path, default=None, metavar="DIR", help="where the runs' logs are fetched to")
    return parser


def tb_arguments(argv: Sequence[str]) -> list[str]:
    """The ``himl`` command line that ``himl-tb ARGV`` stands for."""
    args = _tb_parser().parse_args(list(argv))
    command = ["tb", *selected_runs(args, args.num_runs), "--port", str(args.port)]
    if args.log_dir is not None:
        command += ["--dest", str(args.log_dir)]
    return command


def _download_parser() -> argparse.ArgumentParser:
    parser = HimlArgumentParser(prog="himl-download", description="Copy runs' files here (himl runs download).")
    _add_run_selection(parser, "download")
    parser.add_argument(
        "--output_folder",
        "--output_dir",
        type=Path,
        default=Path("outputs"),
        metavar="DIR",
        help="each run's files go to DIR/RUN_ID (default: outputs)",
    )
    parser.add_argument("--prefix", default="", metavar="PATH", help="only the artifacts under this path, e.g. outputs")
    return parser


def download_arguments(argv: Sequence[str]) -> list[list[str]]:
    """The ``himl`` command lines (one per run) that ``himl-download ARGV`` stands for."""
    args = _download_parser().parse_args(list(argv))
    prefix = args.prefix.strip().strip("/")
    if prefix.startswith("..") or "/../" in f"/{prefix}/":
        raise HimlError(f"--prefix {args.prefix!r}: expected a path inside the run's artifacts")
    commands = []
    for run_id in selected_runs(args):
        command = ["runs", "download", run_id, "--dest", str(args.output_folder / run_id)]
        commands.append([*command, "--path", prefix] if prefix else command)
    return commands


def _report(prog: str, exc: HimlError) -> int:
    from himl_kernel.redact import mask_secrets

    message = mask_secrets(str(exc)).removeprefix(f"{prog}: ")
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def runner_main(argv: Sequence[str] | None = None) -> int:
    """``himl-runner``: hi-ml's runner, which is ``himl run``."""
    from himl_kernel.cli.main import main

    return main(["run", *(sys.argv[1:] if argv is None else argv)])


def tb_main(argv: Sequence[str] | None = None) -> int:
    """``himl-tb``: TensorBoard over the runs hi-ml's flags name."""
    try:
        command = tb_arguments(sys.argv[1:] if argv is None else argv)
    except HimlError as exc:
        return _report("himl-tb", exc)
    from himl_kernel.cli.main import main

    return main(command)


def download_main(argv: Sequence[str] | None = None) -> int:
    """``himl-download``: each run's files into the output folder; stops at the first that fails."""
    try:
        commands = download_arguments(sys.argv[1:] if argv is None else argv)
    except HimlError as exc:
        return _report("himl-download", exc)
    from himl_kernel.cli.main import main

    for command in commands:
        code = main(command)
        if code != 0:
            return code
    return 0
