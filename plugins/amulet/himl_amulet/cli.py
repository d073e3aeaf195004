"""``himl amulet status|logs|results EXPERIMENT [:JOB]``: Amulet's own commands, passed through to ``amlt``."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.contracts import Host

ACTIONS = {
    "status": "the status of an experiment's jobs (amlt status)",
    "logs": "a job's standard output (amlt logs)",
    "results": "download a job's outputs and logs (amlt results)",
}


class AmuletCommand:
    """The ``himl amulet`` subcommand."""

    def configure(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        for action, help_line in ACTIONS.items():
            each = sub.add_parser(action, help=help_line)
            each.add_argument("experiment", help="the experiment's name (as given to himl run --experiment)")
            each.add_argument("jobs", nargs="*", metavar=":JOB", help="jobs of the experiment, each as :NAME")

    def run(self, args: argparse.Namespace, host: Host) -> int:
        from himl_amulet.amlt import require_amlt

        jobs = [str(j) for j in args.jobs]
        for job in jobs:
            if not re.fullmatch(r":[^\s:]+", job):
                raise HimlError(f"himl amulet {args.action}: job {job!r} should be written :NAME (as amlt expects)")
        return require_amlt().call(args.action, args.experiment, *jobs)
