"""``himl doctor``: what is installed and configured, and the command that fixes each gap.

Optional packages are located with import-system finders only, so the check
never imports torch, an Azure SDK or MLflow; the run store is described from
its settings, without opening it. Plugins add their own rows through the
``himl_doctor`` hook. The exit code is 1 when a row is a problem, else 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from himl_kernel.doctor import DoctorReport

if TYPE_CHECKING:
    from himl_kernel.plugins import PluginHost, PluginInfo

MIN_PYTHON = (3, 10)
_DISTRIBUTION_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")  # PEP 508 names


@dataclass(frozen=True)
class OptionalPackage:
    """A package some commands need, and how to get it.

    ``extras`` are the himl extras that should install it, most specific
    first; the first one the installed himl declares is suggested. When none
    is declared, an extra whose requirements name the distribution is used,
    and failing that a plain ``pip install`` of the distribution.
    """

    distribution: str
    module: str
    needed_for: str
    extras: tuple[str, ...] = ()


OPTIONAL_PACKAGES: tuple[OptionalPackage, ...] = (
    OptionalPackage("torch", "torch", "Lightning models and PyTorch trainers", ("lightning",)),
    OptionalPackage("lightning", "lightning", "the Lightning layer (himl_kernel.lightning)", ("lightning",)),
    OptionalPackage("tensorboard", "tensorboard", "the TensorBoard logger", ("lightning",)),
    OptionalPackage("azure-ai-ml", "azure.ai.ml", "AzureML jobs through SDK v2", ("azure", "azure-v2")),
    OptionalPackage("azureml-core", "azureml.core", "AzureML SDK v1 workspaces and HyperDrive", ("azure-v1",)),
    OptionalPackage("openslide-python", "openslide", "reading whole-slide images (pathology)", ("cpath",)),
)

#: Packages the kernel itself depends on: absent means a broken install.
REQUIRED_PACKAGES: tuple[OptionalPackage, ...] = (
    OptionalPackage("mlflow", "mlflow", "the run store (himl runs, metrics, artifacts)"),
)

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
    if not _DISTRIBUTION_NAME.fullmatch(info.distribution):
        return f"skip it: HIML_DISABLE_PLUGINS={skip}"
    return f"pip install --force-reinstall {info.distribution}, or skip it: HIML_DISABLE_PLUGINS={skip}"


def _names_in(value: str) -> set[str]:
    return {part.strip() for part in value.split(",") if part.strip()}


# -- packages ----------------------------------------------------------------------


def find_module(dotted: str) -> ModuleSpec | None:
    """Where ``dotted`` would be imported from, found without importing it.

    ``importlib.util.find_spec("a.b")`` imports ``a`` first; here each level
    is looked up in its parent's search path through the import system's
    finders, so neither the module nor its parents are imported.
    """
    parts = dotted.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return None
    for depth in range(2, len(parts) + 1):
        if spec is None or not spec.submodule_search_locations:
            return None
        spec = _find_in(".".join(parts[:depth]), list(spec.submodule_search_locations))
    return spec


def _find_in(name: str, search_path: list[str]) -> ModuleSpec | None:
    loaded = sys.modules.get(name)
    if loaded is not None:
        return getattr(loaded, "__spec__", None)
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec = find_spec(name, search_path)
        except KeyError:  # a namespace package (``azure.ai``) asks for its parent, which is not imported
            return _namespace_spec(name, search_path)
        except (ImportError, ValueError):
            continue
        if spec is not None:
            return spec  # type: ignore[no-any-return]
    return None


def _namespace_spec(name: str, search_path: list[str]) -> ModuleSpec | None:
    """The spec of namespace package ``name``: its folders in ``search_path``, found without importing."""
    last = name.rpartition(".")[2]
    folders = [str(Path(p) / last) for p in search_path if (Path(p) / last).is_dir()]
    if not folders:
        return None
    spec = ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = folders
    return spec


def _version_of(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "version unknown"


def _himl_extras() -> tuple[set[str], dict[str, list[str]]]:
    """The extras the installed himl declares, and the distributions each requires."""
    from importlib.metadata import PackageNotFoundError, metadata, requires

    try:
        declared = set(metadata("himl").get_all("Provides-Extra") or [])
        requirements = requires("himl") or []
    except PackageNotFoundError:
        return set(), {}
    by_distribution: dict[str, list[str]] = {}
    for requirement in requirements:
        name = re.match(r"\s*([A-Za-z0-9._-]+)", requirement)
        extra = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", requirement)
        if name and extra:
            by_distribution.setdefault(_normalise(name.group(1)), []).append(extra.group(1))
    return declared, by_distribution


def _normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def install_command(package: OptionalPackage, declared: set[str], by_distribution: dict[str, list[str]]) -> str:
    """The pip command that installs ``package``: through a himl extra where one provides it."""
    for extra in package.extras:
        if extra in declared:
            return f"pip install 'himl[{extra}]'"
    via = [e for e in by_distribution.get(_normalise(package.distribution), []) if e not in ("all", "test")]
    if via:
        return f"pip install 'himl[{via[0]}]'"
    return f"pip install {package.distribution}"


def check_packages(
    report: DoctorReport,
    optional: tuple[OptionalPackage, ...] = OPTIONAL_PACKAGES,
    required: tuple[OptionalPackage, ...] = REQUIRED_PACKAGES,
) -> None:
    declared, by_distribution = _himl_extras()
    for package in required:
        spec = find_module(package.module)
        if spec is None:
            report.problem(
                package.distribution,
                f"not installed; himl needs it for {package.needed_for}",
                f"pip install --force-reinstall himl (or pip install {package.distribution})",
            )
        else:
            report.ok(package.distribution, _found(package, spec))
    for package in optional:
        spec = find_module(package.module)
        if spec is None:
            report.missing(
                package.distribution,
                f"not installed (optional: {package.needed_for})",
                install_command(package, declared, by_distribution),
            )
        else:
            report.ok(package.distribution, _found(package, spec))


def _found(package: OptionalPackage, spec: ModuleSpec) -> str:
    if spec.origin and spec.origin not in ("namespace", "built-in", "frozen"):
        location = str(Path(spec.origin).parent)
    else:
        location = next(iter(spec.submodule_search_locations or []), "?")
    return f"{_version_of(package.distribution)} ({location})"


# -- run store ---------------------------------------------------------------------


def redact(uri: str) -> str:
    """``uri`` with any password replaced by ``***``."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


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
    from himl_kernel.runstore import ENV_HOME, RunStore

    store = RunStore()  # settings only: MLflow is not imported until the store is used
    env_uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if env_uri:
        report.ok("MLFLOW_TRACKING_URI", redact(env_uri))
    if store.is_default_store:
        report.ok("run store", f"{store.tracking_uri} (SQLite under {ENV_HOME}; `mlflow ui` shows it)")
    else:
        report.ok("run store", f"{redact(store.tracking_uri)} (from MLFLOW_TRACKING_URI)")
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


def _local_store_folder(uri: str) -> Path | None:
    """The folder that holds a local tracking store (an SQLite file or a file store), else None."""
    from himl_kernel.runstore import local_path_of

    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).parent
    return local_path_of(uri)
