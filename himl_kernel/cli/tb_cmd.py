"""``himl tb RUN_ID [RUN_ID ...]``: TensorBoard over the logs of runs, local or remote.

A local run's ``logs/`` folder is used where it is; a run in another MLflow
store, or one a plugin locates (an AzureML job id), has its logs downloaded
first. Each run appears in TensorBoard under its run id. TensorBoard runs as
a child process that stops with ``himl tb``: Ctrl-C, SIGTERM, SIGHUP, or
(on Linux) even SIGKILL of ``himl``.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.plugins import PluginHost


def configure_tb(parser: argparse.ArgumentParser, host: PluginHost) -> None:
    parser.add_argument(
        "run_ids", nargs="+", metavar="RUN_ID", help="runs to show: local run ids or ids a plugin knows"
    )
    parser.add_argument("--dest", type=Path, default=None, help="where downloaded logs go (default: the himl cache)")
    parser.add_argument("--host", default="127.0.0.1", help="address TensorBoard listens on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=6006, help="port TensorBoard listens on (default: 6006)")
    parser.add_argument(
        "--print-only",
        action="store_true",
        help="fetch the logs, print the --logdir_spec, stop",
    )


def logs_folder(run_id: str, host: PluginHost, dest: Path) -> Path:
    """The folder holding a run's TensorBoard files, downloaded when it is not on this machine."""
    from himl_kernel.cli.runs_cmd import download_run_files
    from himl_kernel.runstore import RunStore

    store = RunStore()
    if store.exists(run_id):
        base = store.get(run_id).artifact_folder
        folder = base / "logs" if base is not None else store.download(run_id, "logs", dest / run_id)
    else:
        folder = download_run_files(store, host, run_id, "logs", dest / run_id)
    if not any(folder.rglob("events.out.tfevents.*")):
        raise HimlError(f"run {run_id} has no TensorBoard event files in its logs (looked in {folder})")
    return folder


def run_tb(args: argparse.Namespace, host: PluginHost) -> int:
    from himl_kernel.dataset_prep import cache_dir

    dest = args.dest or cache_dir() / "tensorboard"
    spec = ",".join(f"{run_id}:{logs_folder(run_id, host, dest)}" for run_id in dict.fromkeys(args.run_ids))
    if args.print_only:
        print(spec)
        return 0
    if importlib.util.find_spec("tensorboard") is None:
        raise HimlError("himl tb needs TensorBoard: pip install tensorboard")
    command = [sys.executable, "-m", "tensorboard.main", "--logdir_spec", spec, "--host", args.host]
    command += ["--port", str(args.port)]
    print(f"himl: TensorBoard at http://{args.host}:{args.port}/ (Ctrl-C stops it)", file=sys.stderr, flush=True)
    return serve(command)


class _Stopped(Exception):
    """SIGTERM or SIGHUP reached ``himl tb``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def serve(command: list[str], grace_s: float = 10.0) -> int:
    """Run ``command`` until it ends or ``himl`` is stopped; in every case the child does not outlive us.

    Ctrl-C (SIGINT), SIGTERM and SIGHUP stop the child (SIGTERM, then SIGKILL
    after ``grace_s`` seconds) before ``himl`` returns; should ``himl`` itself be
    killed with SIGKILL, the child receives SIGTERM from the operating system
    (Linux). Ctrl-C ends with 0, as the prompt promises; the other signals with
    128 + their number.
    """
    from himl_kernel.processes import die_with_parent

    def stop(signum: int, _frame: object) -> None:
        raise _Stopped(signum)

    wanted = [signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    previous = {signum: signal.signal(signum, stop) for signum in wanted}
    process: subprocess.Popen[bytes] | None = None
    try:
        process = subprocess.Popen(command, preexec_fn=lambda: die_with_parent(signal.SIGTERM))
        return process.wait()
    except KeyboardInterrupt:
        return 0
    except _Stopped as stopped:
        return 128 + stopped.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
