"""``himl plugins`` and ``himl models``: what is installed, without importing it."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from himl_kernel.plugins import PluginHost

_FAMILIES = (
    ("compute_backends", "compute"),
    ("dataset_providers", "datasets"),
    ("checkpoint_sources", "checkpoints"),
    ("containers", "models"),
    ("loggers", "loggers"),
    ("commands", "commands"),
)


def configure_plugins(parser: argparse.ArgumentParser, host: PluginHost) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")


def _contributions(host: PluginHost) -> dict[str, dict[str, list[str]]]:
    by_plugin: dict[str, dict[str, list[str]]] = {}
    for attr, label in _FAMILIES:
        for entry in getattr(host, attr):
            by_plugin.setdefault(entry.plugin, {}).setdefault(label, []).append(entry.name)
    return by_plugin


def run_plugins(args: argparse.Namespace, host: PluginHost) -> int:
    contributions = _contributions(host)
    rows: list[dict[str, Any]] = []
    for info in host.plugins:
        rows.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "status": info.status,
                "reason": info.reason,
                "provides": contributions.get(info.name, {}),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    for row in rows:
        where = f"{row['distribution']} {row['version']}".strip()
        if row["status"] == "ok":
            provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in row["provides"].items()) or "(no contributions)"
            print(f"{row['name']:<{width}}  ok        {where:<20}  {provides}")
        else:
            print(f"{row['name']:<{width}}  {row['status']:<8}  {where:<20}  {row['reason']}")
    return 0


def configure_models(parser: argparse.ArgumentParser, host: PluginHost) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")


def run_models(args: argparse.Namespace, host: PluginHost) -> int:
    entries = sorted(host.containers, key=lambda e: e.name)
    if args.json:
        print(
            json.dumps([{"name": e.name, "plugin": e.plugin, "description": e.description} for e in entries], indent=2)
        )
        return 0
    width = max((len(e.name) for e in entries), default=4)
    for entry in entries:
        print(f"{entry.name:<{width}}  [{entry.plugin}]  {entry.description}")
    for broken in host.broken:
        print(f"(not listed: {broken.describe()})")
    return 0
