"""The plugin manager: built-in plugins, entry-point discovery, guarded loading.

:func:`build_host` is the factory; nothing is discovered at import time. The
returned :class:`PluginHost` is the only place where hooks are called: one
typed method per hook, so the rest of the kernel never touches ``pm.hook``.

A plugin that raises on import, fails pluggy's validation, implements a hook
that does not exist, or raises inside a registration hook is *broken*: it is
reported in one line (name, distribution, version, reason), unregistered, and
everything else carries on. ``HIML_DISABLE_PLUGINS=a,b`` skips plugins by name;
``HIML_PLUGIN_AUTOLOAD=0`` skips entry-point discovery altogether.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, Literal, Protocol

import pluggy

from himl_kernel import hookspecs
from himl_kernel.errors import PluginLoadError
from himl_kernel.registry import Registry

if TYPE_CHECKING:
    from himl_kernel.container import Container
    from himl_kernel.contracts import (
        CheckpointSource,
        Command,
        ComputeBackend,
        DatasetProvider,
        LoggerFactory,
        RunFiles,
    )
    from himl_kernel.doctor import DoctorReport
    from himl_kernel.job import JobSpec, Submission
    from himl_kernel.runinfo import RunInfo

ENTRY_POINT_GROUP = "himl"
ENV_DISABLE = "HIML_DISABLE_PLUGINS"
ENV_AUTOLOAD = "HIML_PLUGIN_AUTOLOAD"

#: Built-in plugins: name -> module. They are plugins like any other, so
#: ``HIML_DISABLE_PLUGINS`` can switch them off too.
BUILTIN_PLUGINS: dict[str, str] = {
    "local": "himl_kernel.builtin.local_compute",
    "local-datasets": "himl_kernel.builtin.local_datasets",
    "checkpoints": "himl_kernel.builtin.checkpoints",
    "loggers": "himl_kernel.builtin.loggers",
    "hello": "himl_kernel.builtin.containers",
}

Status = Literal["ok", "broken", "disabled"]


class EntryPointLike(Protocol):
    """What discovery needs of an entry point (``importlib.metadata.EntryPoint``)."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str: ...

    def load(self) -> Any: ...


@dataclass
class PluginInfo:
    """One plugin as ``himl plugins`` shows it."""

    name: str
    distribution: str
    version: str
    source: str
    status: Status = "ok"
    reason: str = ""

    def describe(self) -> str:
        """The one line that names a broken plugin everywhere it is mentioned."""
        where = f"{self.distribution} {self.version}".strip()
        return f"plugin {self.name!r} ({where}) is broken: {self.reason}"


def _distribution_of(ep: Any) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?", "?"
    name = getattr(dist, "name", None) or dist.metadata["Name"]
    return str(name), str(getattr(dist, "version", "?"))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PluginHost:
    """Plugins, their registries, and one typed method per hook."""

    def __init__(self, pm: pluggy.PluginManager, plugins: list[PluginInfo], trace: bool = False) -> None:
        self.pm = pm
        self.plugins = plugins
        self.trace = trace
        self._registries: list[Registry[Any]] = []

    # -- plugin bookkeeping ------------------------------------------------
    @property
    def broken(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.status == "broken"]

    def plugin(self, name: str) -> PluginInfo | None:
        return next((p for p in self.plugins if p.name == name), None)

    def require_plugin(self, name: str) -> None:
        """Fail with the plugin's own line when a command needs a broken plugin."""
        info = self.plugin(name)
        if info is not None and info.status == "broken":
            raise PluginLoadError(info.describe())

    def _mark_broken(self, name: str, reason: str) -> None:
        info = self.plugin(name)
        if info is None:
            return
        info.status = "broken"
        info.reason = reason
        for registry in self._registries:
            registry.remove_plugin(name)  # what it registered before failing goes too
        plugin_obj = self.pm.get_plugin(name)
        if plugin_obj is not None:
            self.pm.unregister(plugin_obj)
        print(f"himl: warning: {info.describe()}", file=sys.stderr)

    def _log(self, message: str) -> None:
        if self.trace:
            print(f"himl trace: {message}", file=sys.stderr)

    def _collect(self, hook_name: str, registry: Registry[Any]) -> Registry[Any]:
        """Call one registration hook plugin by plugin, guarding each."""
        self._registries.append(registry)
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order: an earlier plugin keeps a name
            registry.set_current_plugin(impl.plugin_name)
            self._log(f"{hook_name} <- plugin {impl.plugin_name}")
            try:
                impl.function(registry=registry)
            except Exception as exc:  # a plugin's bug must not take the others down
                self._mark_broken(impl.plugin_name, f"{hook_name} raised {_one_line(exc)}")
        registry.set_current_plugin("")
        for info in self.broken:
            registry.add_note(info.describe())
        return registry

    # -- registries ----------------------------------------------------------
    @cached_property
    def compute_backends(self) -> Registry[ComputeBackend]:
        return self._collect(
            "himl_register_compute_backends", Registry("compute backend", "install a plugin that provides it")
        )

    @cached_property
    def dataset_providers(self) -> Registry[DatasetProvider]:
        return self._collect("himl_register_dataset_providers", Registry("dataset provider"))

    @cached_property
    def checkpoint_sources(self) -> Registry[CheckpointSource]:
        return self._collect("himl_register_checkpoint_sources", Registry("checkpoint source"))

    @cached_property
    def containers(self) -> Registry[type[Container]]:
        return self._collect("himl_register_containers", Registry("model", "`himl models` lists them"))

    @cached_property
    def loggers(self) -> Registry[LoggerFactory]:
        return self._collect("himl_register_loggers", Registry("logger"))

    @cached_property
    def commands(self) -> Registry[Command]:
        return self._collect("himl_register_commands", Registry("command"))

    def backend(self, name: str) -> ComputeBackend:
        """The compute backend registered as ``name``, instantiated."""
        obj = self.compute_backends.get(name)
        return obj() if isinstance(obj, type) else obj

    # -- other hooks -----------------------------------------------------------
    def detect_run(self, environ: Mapping[str, str] | None = None) -> RunInfo | None:
        view = _EnvironView(os.environ if environ is None else environ)
        result: RunInfo | None = self.pm.hook.himl_detect_run(environ=view)
        return result

    def locate_run(self, run_id: str) -> RunFiles | None:
        result: RunFiles | None = self.pm.hook.himl_locate_run(run_id=run_id)
        return result

    def add_options(self, group: argparse._ArgumentGroup, command: str) -> None:
        self.pm.hook.himl_add_options(parser=group, command=command)

    def configure_job(self, job: JobSpec, options: argparse.Namespace) -> None:
        self.pm.hook.himl_configure_job(job=job, options=options)

    def job_submitted(self, job: JobSpec, submission: Submission) -> None:
        self.pm.hook.himl_job_submitted(job=job, submission=submission)

    def doctor(self, report: DoctorReport) -> None:
        """Each plugin's checks; one that raises becomes a problem row named after its plugin."""
        for impl in self.pm.hook.himl_doctor.get_hookimpls():
            self._log(f"himl_doctor <- plugin {impl.plugin_name}")
            try:
                impl.function(report=report)
            except Exception as exc:
                report.problem(
                    f"plugin {impl.plugin_name} checks",
                    f"its himl_doctor hook raised {_one_line(exc)}",
                    f"HIML_DISABLE_PLUGINS={impl.plugin_name} skips the plugin; `himl --verbose doctor` traces it",
                )


class _EnvironView(Mapping[str, str]):
    """The environment, read-only, with a repr that hook tracing may print safely (no values)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def __getitem__(self, key: str) -> str:
        return self._environ[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)

    def __repr__(self) -> str:
        return f"<environment: {len(self._environ)} variables>"


def _trace_writer(message: str) -> None:
    for line in message.rstrip("\n").splitlines():
        sys.stderr.write(f"himl trace: {line}\n")


def _identity(obj: object) -> object:
    return obj


def _env_list(value: str | None) -> set[str]:
    return {part.strip() for part in (value or "").split(",") if part.strip()}


def discover_entry_points() -> list[EntryPointLike]:
    """Entry points in group ``himl`` of the installed distributions."""
    from importlib.metadata import entry_points

    found: list[EntryPointLike] = list(entry_points(group=ENTRY_POINT_GROUP))
    return found


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    unknown = []
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.spec is None:
            unknown.append(caller.name)
    return sorted(unknown)


def build_host(
    *,
    autoload: bool | None = None,
    entry_points: Iterable[EntryPointLike] | None = None,
    extra_plugins: Mapping[str, object] | None = None,
    disabled: Iterable[str] | None = None,
    builtins: bool = True,
    trace: bool = False,
    environ: Mapping[str, str] | None = None,
) -> PluginHost:
    """Build a plugin manager with the built-ins, installed plugins and extras.

    Args:
        autoload: discover installed plugins through entry points; default:
            true unless ``HIML_PLUGIN_AUTOLOAD=0``.
        entry_points: use these instead of the installed ones (tests).
        extra_plugins: name -> plugin object, registered after the others.
        disabled: plugin names to skip; default from ``HIML_DISABLE_PLUGINS``.
        builtins: register the kernel's built-in plugins.
        trace: print hook calls to stderr (``--verbose``).
        environ: where to read the two variables; default ``os.environ``.
    """
    env = os.environ if environ is None else environ
    if autoload is None:
        autoload = env.get(ENV_AUTOLOAD, "1").strip().lower() not in ("0", "false", "no", "off")
    skip = set(disabled) if disabled is not None else _env_list(env.get(ENV_DISABLE))

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    plugins: list[PluginInfo] = []

    def register(name: str, load: Callable[[], object], dist: str, version: str, source: str) -> None:
        info = PluginInfo(name=name, distribution=dist, version=version, source=source)
        plugins.append(info)
        if name in skip:
            info.status = "disabled"
            info.reason = f"listed in {ENV_DISABLE}"
            return
        if pm.get_plugin(name) is not None or pm.is_blocked(name):
            info.status = "broken"
            holder = next((p for p in plugins[:-1] if p.name == name), None)
            held_by = f" ({holder.distribution} {holder.version})".replace(" )", ")") if holder else ""
            info.reason = f"another plugin{held_by} already uses this name"
            print(f"himl: warning: {info.describe()}", file=sys.stderr)
            return
        try:
            obj = load()
        except Exception as exc:
            info.status, info.reason = "broken", f"raised on import: {_one_line(exc)}"
        else:
            try:
                pm.register(obj, name=name)
            except Exception as exc:  # pluggy's validation: bad arguments, bad hookwrapper...
                info.status, info.reason = "broken", f"was rejected by the plugin manager: {_one_line(exc)}"
            else:
                unknown = _unknown_hooks(pm, obj)
                if unknown:
                    pm.unregister(obj)
                    info.status, info.reason = "broken", f"implements unknown hook(s) {', '.join(unknown)}"
        if info.status == "broken":
            print(f"himl: warning: {info.describe()}", file=sys.stderr)

    if builtins:
        from himl_kernel import __version__

        for name, module in BUILTIN_PLUGINS.items():
            register(name, partial(importlib.import_module, module), "himl", __version__, module)

    if autoload or entry_points is not None:
        for ep in entry_points if entry_points is not None else discover_entry_points():
            dist, version = _distribution_of(ep)
            register(ep.name, ep.load, dist, version, ep.value)

    for name, obj in (extra_plugins or {}).items():
        register(name, partial(_identity, obj), "registered in code", "", repr(obj))

    host = PluginHost(pm, plugins, trace=trace)
    if trace:
        pm.trace.root.setwriter(_trace_writer)
        pm.enable_tracing()
    return host
