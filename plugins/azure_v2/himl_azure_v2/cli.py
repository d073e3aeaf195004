"""``himl azure upload`` and ``himl azure download``: copy folders to and from a datastore."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from himl_kernel.plugins import PluginHost


class AzureCommand:
    """The ``himl azure`` subcommand."""

    def configure(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        up = sub.add_parser("upload", help="upload a local folder (or file) to a datastore folder")
        up.add_argument("local", type=Path, help="the local folder or file")
        up.add_argument("remote", nargs="?", default="", help="the folder in the datastore (default: its top)")
        down = sub.add_parser("download", help="download a datastore folder to a local folder")
        down.add_argument("remote", help="the folder in the datastore")
        down.add_argument("local", type=Path, help="the local folder")
        run = sub.add_parser("download-run", help="download the files of an AzureML job (its outputs by default)")
        run.add_argument("run_id", help="the AzureML job's name (its run id)")
        run.add_argument("--path", default="outputs", help="the folder of the job's files (default: outputs)")
        run.add_argument("--dest", type=Path, default=None, help="where to put them (default: ./RUN_ID)")
        for each in (up, down, run):
            each.add_argument("--datastore", default="", help="datastore name (default: workspaceblobstore)")
            each.add_argument(
                "--overwrite", action="store_true", help="replace what exists with different content (default: skip)"
            )
            each.add_argument("--workers", type=int, default=8, help="files transferred at once (default: 8)")
            each.add_argument("--workspace-config", type=Path, default=None, help="the workspace's config.json")
            each.add_argument("--quiet", action="store_true", help="no progress lines")

    def run(self, args: argparse.Namespace, host: PluginHost) -> int:
        from himl_azure_v2.transfer import download_from_datastore, upload_to_datastore

        common = {
            "datastore": args.datastore,
            "overwrite": args.overwrite,
            "max_workers": args.workers,
            "show_progress": not args.quiet,
            "config_file": args.workspace_config,
        }
        if args.action == "upload":
            report = upload_to_datastore(args.local, args.remote, **common)
        elif args.action == "download-run":
            from himl_azure_v2.checkpoints import download_run_files

            report = download_run_files(args.run_id, args.path, args.dest or Path(args.run_id), **common)
        else:
            report = download_from_datastore(args.remote, args.local, **common)
        if args.quiet or args.action == "download-run":
            print(f"himl: {report.summary()}")
        return 0
