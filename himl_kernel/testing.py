"""A testing kit for himl plugin authors.

Test a plugin the way the kernel will load it, without installing it and
without whatever else happens to be installed on the machine::

    from himl_kernel.testing import FakeEntryPoint, fresh_host, host_with_entry_points

    import himl_foo.plugin


    def test_my_model_is_registered():
        host = fresh_host(himl_foo.plugin)           # built-ins + your plugin, nothing else
        assert "FooModel" in host.containers
        assert host.plugin("himl_foo.plugin").status == "ok"


    def test_a_broken_import_is_reported():
        ep = FakeEntryPoint("foo", error=ImportError("no module named 'foo_sdk'"),
                            dist_name="himl-foo", version="1.2.0")
        host = host_with_entry_points(ep)
        assert host.plugin("foo").status == "broken"   # and HelloWorld still works

- :func:`fresh_host` registers plugin objects or modules directly, after the
  kernel's built-ins. Entry-point discovery is off.
- :class:`FakeEntryPoint` stands in for an ``importlib.metadata`` entry point.
  It goes through the same discovery code as an installed distribution:
  guarded loading, the plugin's distribution name and version in every
  message, and ``HIML_DISABLE_PLUGINS``.
- :func:`host_with_entry_points` builds a host from fake (or real) entry
  points instead of the installed ones.
- :func:`write_distribution` "installs" a plugin into a folder (its modules
  and a ``.dist-info`` with its entry points) without pip: put the folder on
  ``PYTHONPATH`` and the real ``himl`` command, in a subprocess, discovers it
  as it would discover ``pip install himl-foo``.

A plugin that raises anything on import, ``SystemExit`` included
(``FakeEntryPoint("foo", error=SystemExit(3))``), or in any hook is reported
broken by the host, never raised into your test; only ``KeyboardInterrupt``
and the :class:`~himl_kernel.errors.HimlError` a run-time hook raises on
purpose get through.

Both helpers ignore ``HIML_DISABLE_PLUGINS`` and ``HIML_PLUGIN_AUTOLOAD`` in
the environment, so a variable left set in your shell cannot change what a
test sees. To test those variables, call :func:`himl_kernel.plugins.build_host`
yourself.

Nothing here patches pluggy: every host is a plain
:func:`~himl_kernel.plugins.build_host` result, and calling its typed methods
(``host.containers``, ``host.detect_run(environ)``...) is how a test drives
your hooks.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from himl_kernel.plugins import ENTRY_POINT_GROUP, EntryPointLike, PluginHost, build_host

__all__ = [
    "FakeDistribution",
    "FakeEntryPoint",
    "fresh_host",
    "host_with_entry_points",
    "plugin_name_of",
    "write_distribution",
]

#: An empty environment: the helpers never read the HIML_* variables.
_NO_ENVIRONMENT: Mapping[str, str] = {}


class _Unset:
    """Marks a FakeEntryPoint made without a plugin object."""

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


@dataclass(frozen=True)
class FakeDistribution:
    """The ``.dist`` of a fake entry point: what ``importlib.metadata.Distribution`` offers discovery."""

    name: str
    version: str

    @property
    def metadata(self) -> Mapping[str, str]:
        """The two metadata fields discovery may read (``Name``, ``Version``)."""
        return {"Name": self.name, "Version": self.version}


@dataclass
class FakeEntryPoint:
    """An entry point of group ``himl`` that no distribution had to install.

    Args:
        name: the plugin name, as the ``[project.entry-points.himl]`` key.
        plugin: what :meth:`load` returns: a module, a class instance or any
            object with ``@hookimpl`` functions.
        error: raised by :meth:`load` instead, as if the plugin's module
            failed on import (an instance, or a class called with no arguments).
        value: the ``"package.module"`` text ``himl plugins`` shows as the
            plugin's source; by default the plugin module's name.
        dist_name: the distribution that "installed" the entry point.
        version: that distribution's version.

    ``loads`` counts the calls to :meth:`load`, so a test can check that a
    disabled plugin was never imported.
    """

    name: str
    plugin: Any = _UNSET
    error: BaseException | type[BaseException] | None = None
    value: str = ""
    dist_name: str = "himl-fake-plugin"
    version: str = "0.0.0"
    group: str = ENTRY_POINT_GROUP
    loads: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if (self.plugin is _UNSET) == (self.error is None):
            raise ValueError(f"FakeEntryPoint {self.name!r}: give exactly one of plugin= or error=")
        if not self.value:
            module = getattr(self.plugin, "__name__", "") if self.error is None else ""
            self.value = module or f"{self.dist_name.replace('-', '_')}.{self.name}"

    @property
    def dist(self) -> FakeDistribution:
        return FakeDistribution(self.dist_name, self.version)

    @property
    def module(self) -> str:
        return self.value.partition(":")[0]

    @property
    def attr(self) -> str:
        return self.value.partition(":")[2]

    def load(self) -> Any:
        """The plugin object, or the configured error raised."""
        self.loads += 1
        if self.error is not None:
            raise self.error
        return self.plugin


def plugin_name_of(plugin: object) -> str:
    """The name :func:`fresh_host` registers ``plugin`` under when none is given.

    A module or a class is named by its ``__name__``; any other object by its
    class name.
    """
    name = getattr(plugin, "__name__", None)
    if isinstance(name, str) and name:
        return name
    return type(plugin).__name__


def fresh_host(
    *plugins: object,
    names: Sequence[str] | None = None,
    builtins: bool = True,
    trace: bool = False,
) -> PluginHost:
    """A plugin host with the built-ins and ``plugins``, and nothing installed.

    Args:
        plugins: plugin modules or objects, registered in this order after
            the kernel's built-in plugins.
        names: the name of each plugin (as ``himl plugins`` and error
            messages show it); by default :func:`plugin_name_of` each.
        builtins: register the kernel's built-in plugins (``local``,
            ``hello``...) first; turn off to see only your plugin's entries.
        trace: print each hook call to stderr, as ``himl --verbose`` does.

    Returns:
        A new :class:`~himl_kernel.plugins.PluginHost`; entry-point discovery
        is off. A plugin that fails to register is reported as broken on the
        host, exactly as it would be in ``himl``.

    Raises:
        ValueError: ``names`` has the wrong length, or two plugins would share
            a name.
    """
    chosen = list(names) if names is not None else [plugin_name_of(p) for p in plugins]
    if len(chosen) != len(plugins):
        raise ValueError(f"fresh_host: {len(plugins)} plugin(s) but {len(chosen)} name(s)")
    extra: dict[str, object] = {}
    for name, plugin in zip(chosen, plugins, strict=True):
        if name in extra:
            raise ValueError(f"fresh_host: two plugins are named {name!r}; pass names=[...]")
        extra[name] = plugin
    return build_host(
        autoload=False,
        entry_points=None,
        extra_plugins=extra,
        builtins=builtins,
        trace=trace,
        environ=_NO_ENVIRONMENT,
    )


def host_with_entry_points(
    *entry_points: EntryPointLike,
    builtins: bool = True,
    trace: bool = False,
) -> PluginHost:
    """A plugin host that discovers ``entry_points`` instead of the installed ones.

    Args:
        entry_points: :class:`FakeEntryPoint` objects (or real
            ``importlib.metadata`` entry points), loaded in this order after
            the built-ins, through the kernel's guarded loading.
        builtins: register the kernel's built-in plugins first.
        trace: print each hook call to stderr.

    Returns:
        A new :class:`~himl_kernel.plugins.PluginHost`.
    """
    return build_host(
        autoload=False,
        entry_points=list(entry_points),
        builtins=builtins,
        trace=trace,
        environ=_NO_ENVIRONMENT,
    )


def write_distribution(
    folder: Path,
    name: str,
    version: str,
    entry_points: Mapping[str, str],
    files: Mapping[str, str] | None = None,
) -> Path:
    """Write a plugin distribution into ``folder`` as an installer would, without building or installing it.

    Args:
        folder: a folder you will put on ``sys.path`` / ``PYTHONPATH``.
        name: the distribution's name (``himl-foo``).
        version: its version.
        entry_points: plugin name -> module (or ``module:object``), the
            ``[project.entry-points.himl]`` table.
        files: relative path -> source text of the plugin's modules
            (dedented), e.g. ``{"himl_foo/__init__.py": "", "himl_foo/plugin.py": "..."}``.

    Returns:
        The ``.dist-info`` folder written.

    Raises:
        ValueError: ``name`` or ``version`` could not be a distribution's, or
            a file path leaves ``folder``.
    """
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
        raise ValueError(f"write_distribution: {name!r} is not a distribution name")
    if not re.fullmatch(r"[A-Za-z0-9.+!_-]+", version):
        raise ValueError(f"write_distribution: {version!r} is not a version")
    root = folder.resolve()
    for relative, text in (files or {}).items():
        path = (root / relative).resolve()
        if not path.is_relative_to(root):
            raise ValueError(f"write_distribution: {relative!r} is outside {str(folder)!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    info = root / f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    table = "".join(f"{plugin} = {target}\n" for plugin, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{table}", encoding="utf-8")
    return info
