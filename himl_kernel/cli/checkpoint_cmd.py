"""``himl checkpoint REF``: resolve a checkpoint reference to a local file and print its path.

Useful to fetch a checkpoint ahead of a run, or to check that a reference
(a path, an https URL, or RUN_ID:path/in/outputs) is right.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from himl_kernel.plugins import PluginHost


def configure_checkpoint(parser: argparse.ArgumentParser, host: PluginHost) -> None:
    parser.add_argument("reference", help="a file path, an http(s) URL, or RUN_ID:path/in/outputs")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where downloads are kept")


def run_checkpoint(args: argparse.Namespace, host: PluginHost) -> int:
    from himl_kernel.checkpoints import resolve_checkpoint

    print(resolve_checkpoint(args.reference, host=host, cache_dir=args.cache_dir))
    return 0
