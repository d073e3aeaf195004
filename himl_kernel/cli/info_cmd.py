"""``himl plugins`` and ``himl models``: what is installed, without importing it."""

from __future__ import annotations

import argparse
import contextlib
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
    parser.epilog = "--verbose also lists the named registries plugins offer each other, with their entries."


def _contributions(host: PluginHost) -> dict[str, dict[str, list[str]]]:
    by_plugin: dict[str, dict[str, list[str]]] = {}
    for attr, label in _FAMILIES:
        for entry in getattr(host, attr):
            by_plugin.setdefault(entry.plugin, {}).setdefault(label, []).append(entry.name)
    for declaration in host.registry_declarations.values():
        by_plugin.setdefault(declaration.plugin, {}).setdefault("registries", []).append(declaration.name)
    return by_plugin


def _probe(host: PluginHost) -> dict[str, list[str]]:
    """Ask every plugin the questions that have no side effects, so that one that fails shows as broken.

    That is the registration hooks, the options of ``himl run`` and ``himl
    submit``, and run detection. Hooks that need a job or a run
    (``himl_configure_job``, ``himl_job_submitted``, ``himl_locate_run``,
    ``himl_doctor``) break a plugin only in the command that calls them.
    """
    from himl_kernel.argparsing import HimlArgumentParser
    from himl_kernel.cli.job_options import add_job_options
    from himl_kernel.errors import HimlError

    options: dict[str, list[str]] = {}
    for command in ("run", "submit"):
        add_job_options(HimlArgumentParser(prog=f"himl {command}", add_help=False), host, command)
        for option, plugin in host.option_owners.items():
            if option not in options.setdefault(plugin, []):
                options[plugin].append(option)
    with contextlib.suppress(HimlError):  # a plugin diagnosing a half-set job environment: `himl run` says so
        host.detect_run()
    return options


def run_plugins(args: argparse.Namespace, host: PluginHost) -> int:
    contributions = _contributions(host)
    for plugin, options in _probe(host).items():
        if options:
            contributions.setdefault(plugin, {})["options"] = options
    rows: list[dict[str, Any]] = []
    for info in host.plugins:
        rows.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "status": info.status,
                "reason": info.reason,
                "provides": contributions.get(info.name, {}) if info.status == "ok" else {},
            }
        )
    verbose = bool(getattr(args, "verbose", False))
    registries = _named_registries(host) if verbose else []
    if args.json:
        print(json.dumps({"plugins": rows, "named_registries": registries} if verbose else rows, indent=2))
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    for row in rows:
        where = f"{row['distribution']} {row['version']}".strip()
        if row["status"] == "ok":
            provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in row["provides"].items()) or "(no contributions)"
            print(f"{row['name']:<{width}}  ok        {where:<20}  {provides}")
        else:
            print(f"{row['name']:<{width}}  {row['status']:<8}  {where:<20}  {row['reason']}")
    if verbose:
        print()
        print("named registries:" if registries else "named registries: (none declared)")
        for registry in registries:
            about = f": {registry['description']}" if registry["description"] else ""
            print(f"  {registry['name']} ({registry['kind']}) of plugin {registry['plugin']}{about}")
            for entry in registry["entries"]:
                print(f"    {entry['name']}  [{entry['plugin']}]  {entry['description']}".rstrip())
            if not registry["entries"]:
                print("    (no entries)")
    return 0


def _named_registries(host: PluginHost) -> list[dict[str, Any]]:
    found = []
    for name, declaration in sorted(host.registry_declarations.items()):
        registry = host.named_registry(name)
        found.append(
            {
                "name": name,
                "kind": declaration.kind,
                "description": declaration.description,
                "plugin": declaration.plugin,
                "distribution": declaration.distribution,
                "entries": [
                    {"name": e.name, "plugin": e.plugin, "distribution": e.distribution, "description": e.description}
                    for e in sorted(registry, key=lambda e: e.name)
                ],
            }
        )
    return found


def configure_models(parser: argparse.ArgumentParser, host: PluginHost) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")


def run_models(args: argparse.Namespace, host: PluginHost) -> int:
    entries = sorted(host.containers, key=lambda e: e.name)
    rejected = sorted(host.containers.rejected, key=lambda e: (e.name, e.plugin))
    if args.json:
        print(
            json.dumps(
                [
                    {"name": e.name, "plugin": e.plugin, "description": e.description}
                    | ({"rejected": True, "pick_with": f"{e.qualifier}:{e.name}"} if e in rejected else {})
                    for e in [*entries, *rejected]
                ],
                indent=2,
            )
        )
        return 0
    width = max((len(e.name) for e in entries), default=4)
    for entry in entries:
        print(f"{entry.name:<{width}}  [{entry.plugin}]  {entry.description}")
    for entry in rejected:
        held = host.containers.entry(entry.name)
        print(f"(also {entry.qualifier}:{entry.name} [{entry.plugin}]: the name is plugin {held.plugin}'s)")
    for broken in host.broken:
        print(f"(not listed: {broken.describe()})")
    return 0
