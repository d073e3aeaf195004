"""``himl ssl export-encoder CHECKPOINT``: an SSL checkpoint's encoder as encoder.safetensors + encoder.json."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from himl_kernel.contracts import Host


class SSLCommand:
    """The ``himl ssl`` subcommand."""

    def configure(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        export = sub.add_parser("export-encoder", help="write a checkpoint's encoder as safetensors and json")
        export.add_argument("checkpoint", help="an SSL checkpoint: a path, URL or RUN_ID:checkpoints/last.ckpt")
        export.add_argument("--output", type=Path, default=Path("."), help="folder for the two files (default: .)")

    def run(self, args: argparse.Namespace, host: Host) -> int:
        from himl_kernel.checkpoints import resolve_checkpoint
        from himl_ssl.export import export_checkpoint

        weights, description = export_checkpoint(resolve_checkpoint(str(args.checkpoint)), Path(args.output))
        print(f"himl: wrote {weights} and {description}")
        return 0


command = SSLCommand()
