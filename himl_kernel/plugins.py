"""The plugin manager: built-in plugins, entry-point discovery, guarded hook calls.

:func:`build_host` is the factory; nothing is discovered at import time. The
returned :class:`PluginHost` is the only place where hooks are called: one
typed method per hook, so the rest of the kernel never touches ``pm.hook``.

Every hook is called plugin by plugin, in the precedence order that
:mod:`himl_kernel.hookspecs` documents, and each call is guarded. A plugin
that raises on import (``sys.exit`` included: any ``BaseException`` but
``KeyboardInterrupt``), fails pluggy's validation, implements a hook that does
not exist, or raises inside any hook is *broken*: it is reported in one line
(name, distribution, version, the hook and the exception), its registry
entries are removed, it is unregistered, and everything else carries on.
A :class:`~himl_kernel.errors.HimlError` raised by a run-time hook
(``himl_detect_run``, ``himl_configure_job``...) is a problem the plugin
diagnosed for the user; it propagates as the command's one-line error.

``HIML_DISABLE_PLUGINS=a,b`` skips plugins by name; ``HIML_PLUGIN_AUTOLOAD=0``
skips entry-point discovery altogether.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, Literal, Protocol

import pluggy

from himl_kernel import hookspecs
from himl_kernel.errors import HimlError, PluginLoadError, UnknownNameError
from himl_kernel.registry import Registry, RegistryCatalog, RegistryDeclaration

if TYPE_CHECKING:
    from himl_kernel.container import Container
    from himl_kernel.contracts import (
        CheckpointSource,
        Command,
        ComputeBackend,
        DatasetProvider,
        Host,
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

    @property
    def where(self) -> str:
        """``DIST VERSION``, or what stands for it."""
        return f"{self.distribution} {self.version}".strip()

    def label(self) -> str:
        """``'name' (dist version)``: how messages name this plugin."""
        return f"{self.name!r} ({self.where})"

    def describe(self) -> str:
        """The one line that names a broken plugin everywhere it is mentioned."""
        return f"plugin {self.label()} is broken: {self.reason}"


def _distribution_of(ep: Any) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?", "?"
    name = getattr(dist, "name", None) or dist.metadata["Name"]
    return str(name), str(getattr(dist, "version", "?"))


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` (at most ``limit`` characters of it)."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    if len(first) > limit:
        first = first[: limit - 3] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class _Broken(Exception):
    """Internal: a guarded call failed and its plugin is now broken."""


class PluginHost:
    """Plugins, their registries, and one typed method per hook."""

    def __init__(self, pm: pluggy.PluginManager, plugins: list[PluginInfo], trace: bool = False) -> None:
        self.pm = pm
        self.plugins = plugins
        self.trace = trace
        self._registries: list[Registry[Any]] = []
        self._named: dict[str, Registry[Any]] = {}
        self._warned: set[str] = set()
        #: option string -> name of the plugin that added it, for the last :meth:`add_options`.
        self.option_owners: dict[str, str] = {}

    # -- plugin bookkeeping ------------------------------------------------
    @property
    def broken(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.status == "broken"]

    def plugin(self, name: str) -> PluginInfo | None:
        """The plugin called ``name``; of two with one name, the one that was loaded."""
        found = [p for p in self.plugins if p.name == name]
        return next((p for p in found if p.status == "ok"), found[0] if found else None)

    def require_plugin(self, name: str) -> None:
        """Fail with the plugin's own line when a command needs a broken plugin."""
        info = self.plugin(name)
        if info is not None and info.status == "broken":
            raise PluginLoadError(info.describe())

    def _rank(self, plugin_name: str) -> int:
        """A plugin's place in the precedence order (see :mod:`himl_kernel.hookspecs`)."""
        for index, info in enumerate(self.plugins):
            if info.name == plugin_name and info.status == "ok":
                return index
        return len(self.plugins)

    def _info(self, plugin_name: str) -> PluginInfo:
        return self.plugin(plugin_name) or PluginInfo(plugin_name, "?", "?", "?")

    def _mark_broken(self, name: str, reason: str) -> None:
        info = self.plugin(name)
        if info is None or info.status != "ok":
            return
        info.status = "broken"
        info.reason = reason
        for registry in self._registries:
            registry.remove_plugin(name)  # what it registered before failing goes too
            registry.add_note(info.describe())
        plugin_obj = self.pm.get_plugin(name)
        if plugin_obj is not None:
            self.pm.unregister(plugin_obj)
        self._warn(info.describe())

    def _log(self, message: str) -> None:
        if self.trace:
            print(f"himl trace: {message}", file=sys.stderr)

    def _warn(self, message: str) -> None:
        """One warning line, said once per process however often the hook runs."""
        if message not in self._warned:
            self._warned.add(message)
            print(f"himl: warning: {message}", file=sys.stderr)

    def _impls(self, hook_name: str) -> list[pluggy.HookImpl]:
        """The hook's implementations in precedence order: built-ins, installed, then in code."""
        impls = getattr(self.pm.hook, hook_name).get_hookimpls()
        return sorted(impls, key=lambda impl: self._rank(impl.plugin_name))

    def _call_one(self, impl: pluggy.HookImpl, hook_name: str, user_errors: bool, kwargs: dict[str, Any]) -> Any:
        """Call one implementation; a failure breaks its plugin and raises :class:`_Broken`.

        With ``user_errors``, a :class:`HimlError` is the plugin telling the user
        something (a run id it knows but cannot find): it propagates unchanged.
        """
        self._log(f"{hook_name} <- plugin {impl.plugin_name}")
        try:
            return impl.function(*(kwargs[arg] for arg in impl.argnames))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a plugin's bug (or sys.exit) must not take the others down
            if user_errors and isinstance(exc, HimlError):
                raise
            self._mark_broken(impl.plugin_name, f"{hook_name} raised {_one_line(exc)}")
            raise _Broken from None

    def _call_all(self, hook_name: str, *, user_errors: bool = True, **kwargs: Any) -> None:
        for impl in self._impls(hook_name):
            try:
                self._call_one(impl, hook_name, user_errors, kwargs)
            except _Broken:
                continue

    def _first_result(self, hook_name: str, **kwargs: Any) -> Any:
        """The first non-None result, asking plugins in precedence order (broken ones are skipped)."""
        for impl in self._impls(hook_name):
            try:
                result = self._call_one(impl, hook_name, True, kwargs)
            except _Broken:
                continue
            if result is not None:
                return result
        return None

    def _collect(self, hook_name: str, registry: Registry[Any], **extra: Any) -> Registry[Any]:
        """Call one registration hook plugin by plugin, guarding each."""
        self._registries.append(registry)
        for info in self.broken:
            registry.add_note(info.describe())
        for impl in self._impls(hook_name):
            info = self._info(impl.plugin_name)
            registry.set_current_plugin(impl.plugin_name, info.distribution)
            try:
                self._call_one(impl, hook_name, False, {"registry": registry, **extra})
            except _Broken:
                continue
            finally:
                registry.set_current_plugin("")
                for clash in registry.take_clashes():
                    self._warn(clash)
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
        return self._collect(
            "himl_register_containers",
            Registry("model", "`himl models` lists them", check=_check_container, dotted_paths=True),
        )

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

    # -- named registries that plugins offer each other ------------------------
    @cached_property
    def registry_declarations(self) -> dict[str, RegistryDeclaration]:
        """The named registries plugins declared (``himl_register_registries``), by name."""
        catalog = RegistryCatalog()
        for impl in self._impls("himl_register_registries"):
            info = self._info(impl.plugin_name)
            catalog.set_current_plugin(impl.plugin_name, info.distribution)
            try:
                self._call_one(impl, "himl_register_registries", False, {"registries": catalog})
            except _Broken:
                catalog.remove_plugin(impl.plugin_name)
                continue
            finally:
                for clash in catalog.take_clashes():
                    self._warn(clash)
        return {d.name: d for d in catalog if self._rank(d.plugin) < len(self.plugins)}

    def named_registry(self, name: str) -> Registry[Any]:
        """The registry ``name`` that a plugin declared, filled by every plugin's ``himl_register_entries``.

        Raises:
            UnknownNameError: no plugin declares a registry of that name.
        """
        held = self._named.get(name)
        if held is not None:
            return held
        declaration = self.registry_declarations.get(name)
        if declaration is None or self._rank(declaration.plugin) >= len(self.plugins):
            notes = "; ".join(p.describe() for p in self.broken)
            raise UnknownNameError("named registry", name, self.registry_declarations, hint=notes)
        registry: Registry[Any] = Registry(declaration.kind or name)
        self._named[name] = registry
        return self._collect("himl_register_entries", registry, name=name)

    # -- other hooks -----------------------------------------------------------
    def detect_run(self, environ: Mapping[str, str] | None = None) -> RunInfo | None:
        view = _EnvironView(os.environ if environ is None else environ)
        result: RunInfo | None = self._first_result("himl_detect_run", environ=view)
        return result

    def locate_run(self, run_id: str) -> RunFiles | None:
        result: RunFiles | None = self._first_result("himl_locate_run", run_id=run_id)
        return result

    def add_options(self, parser: argparse.ArgumentParser | argparse._ArgumentGroup, command: str) -> dict[str, str]:
        """Let each plugin add its options, each in a group of its own; refuse clashing ones.

        A plugin first adds its options to a parser of its own, so that a plugin
        that raises half-way adds nothing. An option string (or destination)
        that two plugins add, or that the kernel already has, is registered for
        none of them, and one warning names everyone who wanted it.

        Args:
            parser: the command's parser (each plugin gets an argument group
                titled with its name), or one argument group for them all.
            command: ``"run"`` or ``"submit"``.

        Returns:
            Option string -> the plugin that added it (also kept as :attr:`option_owners`).
        """
        container: Any = parser
        kernel_keys = {key for action in container._actions for key in _option_keys(action)}
        staged: list[tuple[str, argparse.ArgumentParser]] = []
        for impl in self._impls("himl_add_options"):
            scratch = argparse.ArgumentParser(add_help=False, prefix_chars=container.prefix_chars)
            group = scratch.add_argument_group(impl.plugin_name)
            try:
                self._call_one(impl, "himl_add_options", False, {"parser": group, "command": command})
            except _Broken:
                continue
            staged.append((impl.plugin_name, scratch))
        wanted: dict[str, list[tuple[str, argparse.Action]]] = {}
        for plugin_name, scratch in staged:
            for action in scratch._actions:
                for key in _option_keys(action):
                    wanted.setdefault(key, []).append((plugin_name, action))
        refused: set[str] = set()
        dropped: list[argparse.Action] = []
        for key in sorted(wanted, key=lambda k: (k.startswith("dest "), k)):  # option strings first
            holders = wanted[key]
            owners = list(dict.fromkeys(plugin_name for plugin_name, _ in holders))
            if key not in kernel_keys and len(holders) < 2:
                continue
            refused.add(key)
            if all(any(action is d for d in dropped) for _, action in holders):
                continue  # already said, for one of its option strings
            dropped.extend(action for _, action in holders)
            if key in kernel_keys:
                self._warn(
                    f"option {_shown(key)} of {_plugins_named(self, owners)} is not added: the kernel has it "
                    "(shared options are read from the JobSpec)"
                )
            else:
                self._warn(f"option {_shown(key)} is added by {_plugins_named(self, owners)}; neither is added")
        self.option_owners = {}
        for plugin_name, scratch in staged:
            kept = [a for a in scratch._actions if not refused & set(_option_keys(a))]
            if not kept:
                continue
            info = self._info(plugin_name)
            target = (
                parser.add_argument_group(f"options of plugin {info.name} ({info.where})")
                if isinstance(parser, argparse.ArgumentParser)
                else parser
            )
            for action in kept:
                target._add_action(action)
                for option in action.option_strings:
                    self.option_owners[option] = plugin_name
            for exclusive in scratch._mutually_exclusive_groups:
                if all(a in kept for a in exclusive._group_actions):
                    container._mutually_exclusive_groups.append(exclusive)
            defaults = {k: v for k, v in scratch._defaults.items() if f"dest {k}" not in refused}
            if defaults:
                container.set_defaults(**defaults)
        return dict(self.option_owners)

    def configure_job(self, job: JobSpec, options: argparse.Namespace) -> None:
        self._call_all("himl_configure_job", job=job, options=options)

    def job_submitted(self, job: JobSpec, submission: Submission) -> None:
        self._call_all("himl_job_submitted", job=job, submission=submission)

    def doctor(self, report: DoctorReport) -> None:
        """Each plugin's checks; one that raises becomes a problem row named after its plugin, and broken."""
        for impl in self._impls("himl_doctor"):
            try:
                self._call_one(impl, "himl_doctor", False, {"report": report})
            except _Broken:
                report.problem(
                    f"plugin {impl.plugin_name} checks",
                    self._info(impl.plugin_name).describe(),
                    f"HIML_DISABLE_PLUGINS={impl.plugin_name} skips the plugin; `himl --verbose doctor` traces it",
                )


def _check_container(name: str, obj: Any) -> None:
    from himl_kernel.container import Container

    if not (isinstance(obj, type) and issubclass(obj, Container)) or obj is Container:
        raise HimlError(f"model {name!r} is {obj!r}, which is not a subclass of himl_kernel.container.Container")


def _option_keys(action: argparse.Action) -> list[str]:
    """What two options must not share: their option strings and their destination."""
    keys = list(action.option_strings)
    if action.option_strings and action.dest and action.dest != argparse.SUPPRESS:
        keys.append(f"dest {action.dest}")
    return keys


def _shown(key: str) -> str:
    return f"destination {key[5:]!r}" if key.startswith("dest ") else key


def _plugins_named(host: PluginHost, names: list[str]) -> str:
    labels = [host._info(n).label() for n in names]
    return ("plugin " if len(labels) == 1 else "plugins ") + " and ".join(labels)


if TYPE_CHECKING:

    def _is_a_host(host: PluginHost) -> Host:
        return host  # mypy checks here that PluginHost offers what contracts.Host promises plugins


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


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    unknown = []
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.spec is None:
            unknown.append(caller.name)
    return sorted(unknown)


def _reordering_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Hooks the plugin marks tryfirst, trylast or as a wrapper: the kernel's order is fixed."""
    found = []
    for caller in pm.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and (impl.tryfirst or impl.trylast or impl.hookwrapper or impl.wrapper):
                found.append(caller.name)
    return sorted(found)


@dataclass
class _Candidate:
    info: PluginInfo
    load: Callable[[], object]
    obj: object = None


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

    Plugins are listed, and asked, in the precedence order of
    :mod:`himl_kernel.hookspecs`: built-ins, then installed plugins sorted by
    distribution name and entry-point name, then ``extra_plugins`` in order.

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

    candidates: list[_Candidate] = []
    if builtins:
        from himl_kernel.version import __version__

        for name, module in BUILTIN_PLUGINS.items():
            info = PluginInfo(name=name, distribution="himl", version=__version__, source=module)
            candidates.append(_Candidate(info, partial(importlib.import_module, module)))
    if autoload or entry_points is not None:
        found = []
        for ep in entry_points if entry_points is not None else discover_entry_points():
            dist, version = _distribution_of(ep)
            found.append(_Candidate(PluginInfo(ep.name, dist, version, ep.value), ep.load))
        candidates.extend(sorted(found, key=lambda c: (_canonical(c.info.distribution), c.info.name)))
    for name, obj in (extra_plugins or {}).items():
        info = PluginInfo(name=name, distribution="registered in code", version="", source=repr(obj))
        candidates.append(_Candidate(info, partial(_identity, obj)))

    def warn(info: PluginInfo) -> None:
        print(f"himl: warning: {info.describe()}", file=sys.stderr)

    loaded: dict[str, PluginInfo] = {}
    for candidate in candidates:
        info = candidate.info
        if info.name in skip:
            info.status, info.reason = "disabled", f"listed in {ENV_DISABLE}"
            continue
        holder = loaded.get(info.name)
        if holder is not None:
            info.status = "broken"
            info.reason = f"another plugin ({holder.where}) already uses this name"
            warn(info)
            continue
        try:
            candidate.obj = candidate.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit from a plugin's import is a broken plugin too
            info.status, info.reason = "broken", f"raised on import: {_one_line(exc)}"
            warn(info)
            continue
        loaded[info.name] = info

    # pluggy calls the last registered plugin first: register in reverse, so
    # that a plain ``pm.hook`` call follows the same precedence as the host.
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    rejected: list[PluginInfo] = []
    for candidate in reversed(candidates):
        info = candidate.info
        if info.status != "ok" or loaded.get(info.name) is not info:
            continue
        try:
            pm.register(candidate.obj, name=info.name)
        except Exception as exc:  # pluggy's validation: bad arguments, bad hookwrapper...
            info.status, info.reason = "broken", f"was rejected by the plugin manager: {_one_line(exc)}"
        else:
            unknown = _unknown_hooks(pm, candidate.obj)
            reordering = _reordering_hooks(pm, candidate.obj)
            if unknown:
                info.status, info.reason = "broken", f"implements unknown hook(s) {', '.join(unknown)}"
            elif reordering:
                info.status = "broken"
                info.reason = (
                    f"marks {', '.join(reordering)} tryfirst, trylast or as a wrapper; "
                    "himl asks plugins in one fixed order (see himl_kernel.hookspecs)"
                )
            if info.status == "broken":
                pm.unregister(candidate.obj)
        if info.status == "broken":
            rejected.append(info)
    for info in reversed(rejected):  # warned in precedence order, like the others
        warn(info)

    host = PluginHost(pm, [c.info for c in candidates], trace=trace)
    if trace:
        pm.trace.root.setwriter(_trace_writer)
        pm.enable_tracing()
    return host
