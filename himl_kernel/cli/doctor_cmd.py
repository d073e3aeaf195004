"""``himl doctor``: what is installed and configured, and the command that fixes each gap.

The kernel's packages are read from its distribution's metadata (requirement
strings parsed with ``packaging``), so the check imports none of them; each
plugin reports its own through the ``himl_doctor`` hook, so the kernel names
no plugin's packages. The run store is opened for real: its schema revision
against the installed MLflow's, a store written by a newer MLflow, a server
that does not answer. A local store not made yet is not created, and one the
next command would upgrade is only described. The exit code is 1 when a row is
a problem, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from himl_kernel.doctor import DoctorReport
from himl_kernel.redact import mask_secrets

if TYPE_CHECKING:
    from himl_kernel.plugins import PluginHost, PluginInfo
    from himl_kernel.runstore import RunStore

MIN_PYTHON = (3, 10)


_PLUGIN_FAMILIES = (
    "compute_backends",
    "dataset_providers",
    "checkpoint_sources",
    "containers",
    "loggers",
    "commands",
)


def configure_doctor(parser: argparse.ArgumentParser, host: PluginHost) -> None:
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")


def run_doctor(args: argparse.Namespace, host: PluginHost) -> int:
    report = build_report(host)
    if args.json:
        print(json.dumps({"checks": report.to_dicts(), "exit_code": report.exit_code}, indent=2))
    else:
        print(report.render())
    return report.exit_code


def build_report(host: PluginHost) -> DoctorReport:
    """Run every kernel check, then let plugins add theirs."""
    report = DoctorReport()
    check_python(report)
    check_himl(report)
    check_plugins(report, host)
    check_packages(report)
    check_run_store(report)
    host.doctor(report)  # plugins' own checks, each guarded
    return report


# -- Python and himl -------------------------------------------------------------


def check_python(report: DoctorReport, version: tuple[int, ...] | None = None) -> None:
    current = tuple(sys.version_info[:3]) if version is None else version
    text = ".".join(str(part) for part in current)
    wanted = ".".join(str(part) for part in MIN_PYTHON)
    if current[:2] >= MIN_PYTHON:
        report.ok("python", f"{text} ({sys.executable})")
    else:
        report.problem(
            "python", f"{text} is too old: himl needs {wanted} or newer", f"use a Python {wanted}+ virtual environment"
        )


def check_himl(report: DoctorReport) -> None:
    """The kernel's version and installed distribution; a problem when the installed ``himl`` is another project."""
    from himl_kernel.distribution import check_kernel_distribution

    check_kernel_distribution(report)


# -- plugins -----------------------------------------------------------------------


def check_plugins(report: DoctorReport, host: PluginHost) -> None:
    from himl_kernel.plugins import ENV_AUTOLOAD, ENV_DISABLE

    # Registration hooks run lazily; calling them here surfaces a plugin that
    # fails while registering, not only one that fails on import.
    for family in _PLUGIN_FAMILIES:
        getattr(host, family)
    autoload = os.environ.get(ENV_AUTOLOAD, "1").strip().lower()
    if autoload in ("0", "false", "no", "off"):
        report.missing(
            "plugin discovery",
            f"off ({ENV_AUTOLOAD}={autoload}): installed plugins are not loaded",
            f"unset {ENV_AUTOLOAD}",
        )
    disabled_now = _names_in(os.environ.get(ENV_DISABLE, ""))
    for info in host.plugins:
        topic = f"plugin {info.name}"
        where = f"{info.distribution} {info.version}".strip()
        if info.status == "ok":
            report.ok(topic, where)
        elif info.status == "disabled":
            others = sorted(disabled_now - {info.name})
            fix = f"{ENV_DISABLE}={','.join(others)}" if others else f"unset {ENV_DISABLE}"
            report.missing(topic, f"{where}: disabled ({info.reason})", fix)
        else:
            report.problem(topic, f"{where}: {info.reason}", _plugin_fix(info, disabled_now))


def _plugin_fix(info: PluginInfo, disabled_now: set[str]) -> str:
    skip = f"{','.join(sorted(disabled_now | {info.name}))}"
    # Plugins registered in code have a placeholder instead of a distribution name: nothing to reinstall.
    if not _is_distribution_name(info.distribution):
        return f"skip it: HIML_DISABLE_PLUGINS={skip}"
    return f"pip install --force-reinstall {info.distribution}, or skip it: HIML_DISABLE_PLUGINS={skip}"


def _is_distribution_name(text: str) -> bool:
    """Whether ``text`` is a bare distribution name (what ``pip install`` takes), as packaging reads it."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return False
    return requirement.name == text and not (requirement.extras or requirement.specifier or requirement.url)


def _names_in(value: str) -> set[str]:
    return {part.strip() for part in value.split(",") if part.strip()}


# -- packages ----------------------------------------------------------------------


def check_packages(report: DoctorReport, distribution: str = "himl") -> None:
    """The kernel's own requirements and extras, read from its installed metadata (nothing is imported).

    Plugins report their packages themselves, through ``himl_doctor`` and
    :meth:`~himl_kernel.doctor.DoctorReport.requirements_of`; the kernel's
    extras that install a plugin show here as that plugin's distribution.
    """
    from himl_kernel.distribution import inspect_kernel

    if distribution == "himl" and not inspect_kernel().is_ours:
        return  # the himl row says what is wrong; another project's requirements say nothing about this one
    report.requirements_of(distribution)


# -- run store ---------------------------------------------------------------------


def _writable_folder(folder: Path) -> tuple[bool, str]:
    """Whether ``folder`` can hold the run store, and a few words on why."""
    if folder.exists():
        if not folder.is_dir():
            return False, f"{folder} is a file, not a folder"
        if os.access(folder, os.W_OK | os.X_OK):
            return True, f"{folder} (writable)"
        return False, f"{folder} is not writable"
    parent = folder.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
        return True, f"{folder} (created on first use)"
    return False, f"{folder} cannot be created: {parent} is not writable"


def check_run_store(report: DoctorReport) -> None:
    """Where runs go, and the store itself, opened for real (a store not made yet is not created)."""
    from himl_kernel.runstore import ENV_HOME, RunStore

    store = RunStore()
    env_uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if env_uri:
        report.ok("MLFLOW_TRACKING_URI", mask_secrets(env_uri))
    if store.is_default_store:
        report.ok("run store", f"{store.tracking_uri} (SQLite under {ENV_HOME}; `mlflow ui` shows it)")
    else:
        report.ok("run store", f"{store.display_uri} (from MLFLOW_TRACKING_URI)")
        local = _local_store_folder(store.tracking_uri)
        if local is not None:
            usable, detail = _writable_folder(local)
            if not usable:
                report.problem("run store folder", detail, "point MLFLOW_TRACKING_URI at a writable location")
    # HIML_HOME holds the default store, and staging folders for remote stores.
    usable, detail = _writable_folder(store.home)
    if not os.environ.get(ENV_HOME):
        detail = f"{detail}; not set, so ./himl_runs"
    if usable:
        report.ok(ENV_HOME, detail)
    else:
        report.problem(ENV_HOME, detail, f"set {ENV_HOME} to a writable folder")
    check_store_contents(report, store)


def check_store_contents(report: DoctorReport, store: RunStore) -> None:
    """The ``run store schema`` row: the store opened, its schema against the installed MLflow's, its size.

    A local SQLite store is read first with the standard library: one not
    made yet stays unmade, and one that the next command would upgrade is
    described, not upgraded. A server is asked whether it answers.
    """
    from importlib import metadata

    from himl_kernel.errors import HimlError
    from himl_kernel.storefile import head_revision, is_known_revision, read_state, sqlite_path_of

    topic = "run store schema"
    mlflow_version = metadata.version("mlflow")
    db = sqlite_path_of(store.tracking_uri)
    try:
        if db is not None:
            state = read_state(db)
            if not state.exists:
                report.ok(topic, f"not made yet; made on first use by MLflow {mlflow_version}")
                return
            revision, head = state.revision, head_revision()
            if revision is not None and revision != head:
                if not is_known_revision(revision):
                    _ = store.client  # raises the one-line error that says which MLflow wrote it
                report.ok(
                    topic,
                    f"revision {revision}, older than MLflow {mlflow_version}'s {head}: the next himl command "
                    f"upgrades it, keeping a copy beside it ({state.runs} runs)",
                )
                return
            if revision is None:
                _ = store.client  # a half-made store without runs is made again, one with runs refused
        experiments = store.client.search_experiments(max_results=1000)
    except HimlError as exc:
        report.problem(topic, str(exc), "see the message; `himl --verbose doctor` shows the traceback")
        return
    except Exception as exc:  # what the store or its server answered
        report.problem(topic, f"cannot open {store.display_uri}: {mask_secrets(str(exc))}", "check MLFLOW_TRACKING_URI")
        return
    if db is not None:
        state = read_state(db)
        counts = f"{len(experiments)} experiment(s), {state.runs} run(s)"
        report.ok(topic, f"revision {state.revision} (MLflow {mlflow_version}): {counts}")
    else:
        report.ok(topic, f"answers (MLflow {mlflow_version} client): {len(experiments)} experiment(s) visible")


def _local_store_folder(uri: str) -> Path | None:
    """The folder that holds a local tracking store (an SQLite file or a file store), else None."""
    from himl_kernel.runstore import local_path_of
    from himl_kernel.storefile import sqlite_path_of

    db = sqlite_path_of(uri)
    if db is not None:
        return db.parent
    return local_path_of(uri)
