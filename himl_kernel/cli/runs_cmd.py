"""``himl runs``: list, show, download and aggregate runs in the run store.

Everything goes through :class:`~himl_kernel.runstore.RunStore`, so the same
commands work on the local SQLite store and on any MLflow tracking server
(``MLFLOW_TRACKING_URI``), an AzureML workspace included.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.plugins import PluginHost
    from himl_kernel.runstore import RunStore, StoredRun

BACKEND_TAG = "himl.backend"
SWEEP_TAG = "himl.sweep"
TRIAL_TAG = "himl.trial"
SHORT_ID = 8


def configure_runs(parser: argparse.ArgumentParser, host: PluginHost) -> None:
    sub = parser.add_subparsers(dest="runs_command", metavar="SUBCOMMAND", required=True)

    listing = sub.add_parser("list", help="the most recent runs, newest first", description="The most recent runs.")
    listing.add_argument("--experiment", default="", metavar="NAME", help="only runs of this experiment")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="how many runs to show (default: 50)")
    listing.add_argument("--json", action="store_true", help="print as JSON")

    show = sub.add_parser("show", help="one run in detail", description="A run's params, metrics, tags and files.")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--json", action="store_true", help="print as JSON")

    download = sub.add_parser(
        "download", help="copy a run's files here", description="Copy a run's artifacts into a local folder."
    )
    download.add_argument("run_id", metavar="RUN_ID")
    download.add_argument(
        "--path", default="", help="an artifact folder or file, e.g. outputs or logs/stdout.txt (default: everything)"
    )
    download.add_argument("--dest", default="", metavar="DIR", help="the folder to copy into (default: ./RUN_ID)")

    aggregate = sub.add_parser(
        "aggregate",
        help="child-run metrics of a sweep or cross-validation, side by side",
        description=(
            "One row per metric (its latest value), one column per child run, then the mean and the "
            "sample standard deviation (n-1 in the denominator) over the child runs that logged the metric; "
            "std is empty when fewer than two did."
        ),
    )
    aggregate.add_argument("run_id", metavar="PARENT_ID", help="the parent run of the sweep")
    aggregate.add_argument("--format", choices=("csv", "json", "table"), default="csv", help="default: csv")
    aggregate.add_argument("--output", default="", metavar="FILE", help="write to this file instead of stdout")


def run_runs(args: argparse.Namespace, host: PluginHost) -> int:
    from himl_kernel.runstore import RunStore

    if args.runs_command == "download":
        return _download(args, RunStore(), host)
    handlers: dict[str, Callable[[argparse.Namespace, RunStore], int]] = {
        "list": _list,
        "show": _show,
        "aggregate": _aggregate,
    }
    return handlers[args.runs_command](args, RunStore())  # a closed stdout is handled by himl's main


# -- list ------------------------------------------------------------------------


def _list(args: argparse.Namespace, store: RunStore) -> int:
    if args.limit < 1:
        raise HimlError(f"--limit must be at least 1, got {args.limit}")
    runs = store.list_runs(experiment=args.experiment, max_results=args.limit)
    if args.json:
        print(json.dumps([_summary(run) for run in runs], indent=2))
        return 0
    if not runs:
        where = f"experiment {args.experiment!r} of " if args.experiment else ""
        print(f"no runs in {where}the run store {store.tracking_uri}")
        return 0
    rows = [
        [
            run.run_id,
            run.experiment,
            run.name,
            run.status,
            format_time(run.start_time),
            run.parent_run_id[:SHORT_ID],
            run.tags.get(BACKEND_TAG, ""),
        ]
        for run in runs
    ]
    print(format_table(["RUN ID", "EXPERIMENT", "NAME", "STATUS", "STARTED", "PARENT", "BACKEND"], rows))
    return 0


def _summary(run: StoredRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "experiment": run.experiment,
        "name": run.name,
        "status": run.status,
        "start_time": iso_time(run.start_time),
        "end_time": iso_time(run.end_time),
        "parent_run_id": run.parent_run_id,
        "backend": run.tags.get(BACKEND_TAG, ""),
    }


# -- show ------------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactFile:
    path: str
    size: int | None


def list_artifact_files(store: RunStore, run_id: str, folder: str = "") -> list[ArtifactFile]:
    """Every artifact file of a run, with its size, found by walking the artifact folders."""
    files: list[ArtifactFile] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            entries = store.client.list_artifacts(run_id, current or None)
        except Exception as exc:
            raise HimlError(f"cannot list the artifacts of run {run_id}: {_first_line(exc)}") from exc
        for entry in entries:
            if entry.is_dir:
                pending.append(entry.path)
            else:
                files.append(ArtifactFile(entry.path, entry.file_size))
    return sorted(files, key=lambda f: f.path)


def _show(args: argparse.Namespace, store: RunStore) -> int:
    run = store.get(args.run_id)
    children = store.children(run.run_id)
    files = list_artifact_files(store, run.run_id)
    tags = {k: v for k, v in sorted(run.tags.items()) if not k.startswith("mlflow.")}
    if args.json:
        document = {
            **_summary(run),
            "artifact_uri": run.artifact_uri,
            "children": [child.run_id for child in children],
            "params": dict(sorted(run.params.items())),
            "metrics": {k: _json_number(v) for k, v in sorted(run.metrics.items())},
            "tags": tags,
            "files": [{"path": f.path, "size": f.size} for f in files],
        }
        print(json.dumps(document, indent=2))
        return 0
    lines = [
        f"run         {run.run_id}",
        f"experiment  {run.experiment}",
        f"name        {run.name}",
        f"status      {run.status}",
        f"started     {format_time(run.start_time)}",
        f"ended       {format_time(run.end_time)}{_duration(run)}",
        f"parent      {run.parent_run_id or '-'}",
        f"children    {len(children)}",
        f"artifacts   {run.artifact_uri}",
    ]
    lines += _section("params", run.params)
    lines += _section("metrics", {k: format_number(v) for k, v in run.metrics.items()})
    lines += _section("tags", tags)
    lines.append(f"files ({len(files)}):")
    if files:
        width = max(len(f.path) for f in files)
        lines += [f"  {f.path:<{width}}  {format_size(f.size)}" for f in files]
    else:
        lines.append("  (none)")
    print("\n".join(lines))
    return 0


def _section(title: str, values: dict[str, str]) -> list[str]:
    if not values:
        return [f"{title}: (none)"]
    width = max(len(k) for k in values)
    return [f"{title}:"] + [f"  {k:<{width}}  {' '.join(str(v).split())}" for k, v in sorted(values.items())]


def _duration(run: StoredRun) -> str:
    if run.start_time is None or run.end_time is None:
        return ""
    seconds = max(run.end_time - run.start_time, 0) / 1000
    return f"  ({seconds:.1f} s)"


# -- download --------------------------------------------------------------------


def download_run_files(store: RunStore, host: PluginHost, run_id: str, path: str, dest: Path) -> Path:
    """A run's files under ``path`` copied into ``dest``, from the run store or from a plugin that knows the run."""
    if dest.exists() and not dest.is_dir():
        raise HimlError(f"--dest {dest} is a file; give a folder")
    if store.exists(run_id):
        return store.download(run_id, path, dest)
    located = host.locate_run(run_id)
    if located is None:
        store.get(run_id)  # raises the one-line "unknown run id" error
    assert located is not None
    return located.download(path, dest)


def _download(args: argparse.Namespace, store: RunStore, host: PluginHost) -> int:
    dest = Path(args.dest) if args.dest else Path.cwd() / args.run_id
    local = download_run_files(store, host, args.run_id, args.path, dest)
    copied = [p for p in local.rglob("*") if p.is_file()] if local.is_dir() else [local]
    size = sum(p.stat().st_size for p in copied)
    what = f"{args.path.strip('/')!r} of run" if args.path.strip("/") else "run"
    print(f"downloaded {len(copied)} file(s), {format_size(size)}, of {what} {args.run_id} to {local}")
    return 0


# -- aggregate -------------------------------------------------------------------


@dataclass
class Aggregate:
    """Child-run metrics of one sweep: a column per child, a row per metric."""

    parent_run_id: str
    labels: list[str]
    run_ids: list[str]
    rows: list[tuple[str, list[float | None], float | None, float | None]]  # metric, values, mean, std


def aggregate_children(store: RunStore, parent_run_id: str) -> Aggregate:
    parent = store.get(parent_run_id)
    children = store.children(parent.run_id)
    if not children:
        raise HimlError(
            f"run {parent.run_id} has no child runs; aggregate takes the parent of a sweep or cross-validation"
        )
    children = sorted(children, key=_trial_order)
    labels = column_labels(parent, children)
    metrics = sorted({key for child in children for key in child.metrics})
    rows: list[tuple[str, list[float | None], float | None, float | None]] = []
    for metric in metrics:
        values = [child.metrics.get(metric) for child in children]
        present = [v for v in values if v is not None]
        mean = statistics.fmean(present) if present else None
        std = statistics.stdev(present) if len(present) >= 2 else None
        rows.append((metric, values, mean, std))
    return Aggregate(parent.run_id, labels, [child.run_id for child in children], rows)


def _trial_order(run: StoredRun) -> tuple[int, int]:
    trial = run.tags.get(TRIAL_TAG, "")
    return (int(trial) if trial.isdigit() else sys.maxsize, run.start_time or 0)


def _sweep_parameters(parent: StoredRun, children: Sequence[StoredRun]) -> list[str]:
    """The parameters the sweep varied: from the parent's sweep tag, else those that differ between children."""
    try:
        described = json.loads(parent.tags.get(SWEEP_TAG, "") or "{}").get("parameters", {})
    except (ValueError, AttributeError):
        described = {}
    if isinstance(described, dict) and described:
        return [str(name) for name in described]
    names = sorted({key for child in children for key in child.params})
    return [name for name in names if len({child.params.get(name) for child in children}) > 1]


def column_labels(parent: StoredRun, children: Sequence[StoredRun]) -> list[str]:
    """A label per child: its sweep values (``crossval_index=0``), else its name; made unique."""
    parameters = _sweep_parameters(parent, children)
    labels = []
    for child in children:
        pairs = [f"{name}={child.params[name]}" for name in parameters if name in child.params]
        labels.append(", ".join(pairs) or child.name or child.run_id)
    clashing = {label for label in labels if labels.count(label) > 1} | {"metric", "mean", "std"}
    return [
        f"{label} ({child.run_id[:SHORT_ID]})" if label in clashing else label
        for label, child in zip(labels, children, strict=True)
    ]


def render_aggregate(result: Aggregate, fmt: str) -> str:
    header = ["metric", *result.labels, "mean", "std"]
    if fmt == "json":
        document = {
            "parent_run_id": result.parent_run_id,
            "std": "sample standard deviation (n-1) over the child runs",
            "runs": [{"label": label, "run_id": rid} for label, rid in zip(result.labels, result.run_ids, strict=True)],
            "metrics": [
                {
                    "metric": metric,
                    "values": {label: _json_number(v) for label, v in zip(result.labels, values, strict=True)},
                    "mean": _json_number(mean),
                    "std": _json_number(std),
                }
                for metric, values, mean, std in result.rows
            ],
        }
        return json.dumps(document, indent=2) + "\n"
    if fmt == "table":
        body = [
            [metric, *(format_number(v) for v in values), format_number(mean), format_number(std)]
            for metric, values, mean, std in result.rows
        ]
        note = f"mean and sample std (n-1) over {len(result.labels)} child runs of {result.parent_run_id}"
        return format_table(header, body) + "\n" + note + "\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for metric, values, mean, std in result.rows:
        writer.writerow([metric, *(_csv_number(v) for v in values), _csv_number(mean), _csv_number(std)])
    return buffer.getvalue()


def _aggregate(args: argparse.Namespace, store: RunStore) -> int:
    result = aggregate_children(store, args.run_id)
    text = render_aggregate(result, args.format)
    if args.output:
        target = Path(args.output)
        try:
            target.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise HimlError(f"cannot write {target}: {exc.strerror or exc}") from exc
        print(f"wrote {len(result.rows)} metric(s) over {len(result.labels)} child runs to {target}")
    else:
        sys.stdout.write(text)
    return 0


# -- formatting ------------------------------------------------------------------


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in [header, *rows]
    ]
    return "\n".join(lines)


def format_time(millis: int | None) -> str:
    if millis is None:
        return "-"
    return datetime.fromtimestamp(millis / 1000).strftime("%Y-%m-%d %H:%M:%S")


def iso_time(millis: int | None) -> str | None:
    if millis is None:
        return None
    return datetime.fromtimestamp(millis / 1000).astimezone().isoformat(timespec="seconds")


def format_number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def format_size(size: int | None) -> str:
    if size is None:
        return "?"
    if size < 1024:
        return f"{size} B"
    amount, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if amount < 1024:
            break
        amount, unit = amount / 1024, bigger
    return f"{amount:.1f} {unit}"


def _csv_number(value: float | None) -> str:
    return "" if value is None else repr(value)


def _json_number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
