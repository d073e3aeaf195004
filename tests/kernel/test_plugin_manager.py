"""The plugin manager: built-ins, guarded loading, registries, the debugging switches.

Plugins here are small classes with ``@hookimpl`` methods, registered through
the testing kit (:mod:`himl_kernel.testing`) or found through a distribution
written into a temporary folder, so the real discovery code runs.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from himl_kernel import __version__, hookimpl
from himl_kernel.errors import HimlError, PluginLoadError, UnknownNameError
from himl_kernel.plugins import BUILTIN_PLUGINS, ENV_AUTOLOAD, ENV_DISABLE, build_host
from himl_kernel.registry import Registry
from himl_kernel.testing import FakeEntryPoint, fresh_host, host_with_entry_points


class ContainerPlugin:
    """Registers the given names as containers (lazy import paths that are never loaded here)."""

    def __init__(self, *names: str) -> None:
        self.names = names

    @hookimpl
    def himl_register_containers(self, registry: Registry[Any]) -> None:
        for name in self.names:
            registry.add(name, f"himl_tests_not_imported:{name}", f"test container {name}")


class RaisingRegistrationPlugin:
    """Registers one container, then fails inside the same hook."""

    @hookimpl
    def himl_register_containers(self, registry: Registry[Any]) -> None:
        registry.add("HalfRegistered", "himl_tests_not_imported:HalfRegistered")
        raise RuntimeError("the plugin's own bug")


class MisspelledHookPlugin:
    """Implements a hook that the kernel does not define."""

    @hookimpl
    def himl_register_containerz(self, registry: Registry[Any]) -> None:
        registry.add("NeverSeen", "himl_tests_not_imported:NeverSeen")


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("himl: warning:")]


# --- built-ins ---------------------------------------------------------------


def test_builtin_plugins_are_listed_with_the_kernel_distribution() -> None:
    host = fresh_host()

    listed = {p.name: p for p in host.plugins}
    assert list(listed) == list(BUILTIN_PLUGINS)
    for info in listed.values():
        assert (info.status, info.distribution, info.version) == ("ok", "himl", __version__)
        assert info.source == BUILTIN_PLUGINS[info.name]
    assert "local" in host.compute_backends
    assert "local" in host.dataset_providers
    assert {"path", "url"} <= set(host.checkpoint_sources.names())
    assert "mlflow" in host.loggers
    assert host.containers.entry("HelloWorld").plugin == "hello"


def test_fresh_host_registers_plugins_after_the_builtins() -> None:
    host = fresh_host(ContainerPlugin("Mine"), names=["mine"])

    assert [p.name for p in host.plugins] == [*BUILTIN_PLUGINS, "mine"]
    assert host.plugin("mine") is not None
    assert host.containers.names() == ["HelloWorld", "Mine", "PlainHelloWorld"]
    assert host.containers.entry("Mine").plugin == "mine"


def test_fresh_host_without_builtins_holds_only_the_given_plugins() -> None:
    host = fresh_host(ContainerPlugin("Mine"), builtins=False)

    assert [p.name for p in host.plugins] == ["ContainerPlugin"]
    assert host.containers.names() == ["Mine"]
    assert len(host.compute_backends) == 0


def test_fresh_host_refuses_two_plugins_with_one_name() -> None:
    with pytest.raises(ValueError, match="two plugins are named 'ContainerPlugin'"):
        fresh_host(ContainerPlugin("A"), ContainerPlugin("B"))


# --- broken plugins ------------------------------------------------------------


def test_plugin_raising_on_import_is_broken_in_one_line_and_others_work(capsys: pytest.CaptureFixture[str]) -> None:
    bad = FakeEntryPoint(
        "badplug",
        error=ImportError("No module named 'heavy_sdk'\n(needed by himl_badplug.models)"),
        dist_name="himl-badplug",
        version="3.1.4",
    )
    good = FakeEntryPoint("goodplug", plugin=ContainerPlugin("GoodModel"), dist_name="himl-goodplug", version="1.0")

    host = host_with_entry_points(bad, good)

    info = host.plugin("badplug")
    assert info is not None
    assert info.status == "broken"
    line = info.describe()
    assert line == (
        "plugin 'badplug' (himl-badplug 3.1.4) is broken: raised on import: ImportError: No module named 'heavy_sdk'"
    )
    assert warning_lines(capsys.readouterr().err) == [f"himl: warning: {line}"]
    assert [p.name for p in host.broken] == ["badplug"]
    # The others keep working.
    assert host.plugin("goodplug") is not None
    assert host.containers.names() == ["GoodModel", "HelloWorld", "PlainHelloWorld"]
    assert host.containers.entry("GoodModel").plugin == "goodplug"
    # A lookup that may have needed the broken plugin says so.
    with pytest.raises(UnknownNameError) as excinfo:
        host.containers.get("BadPlugModel")
    assert line in str(excinfo.value)
    # A command that needs the plugin fails with that same line.
    with pytest.raises(PluginLoadError) as needed:
        host.require_plugin("badplug")
    assert str(needed.value) == line
    host.require_plugin("goodplug")  # an ok plugin passes


def test_fake_entry_point_is_loaded_once_and_counted() -> None:
    ep = FakeEntryPoint("counted", plugin=ContainerPlugin("Counted"))

    host = host_with_entry_points(ep)

    assert ep.loads == 1
    assert host.plugin("counted") is not None
    assert (ep.dist.name, ep.dist.version) == ("himl-fake-plugin", "0.0.0")
    assert ep.dist.metadata["Name"] == "himl-fake-plugin"


def test_fake_entry_point_needs_a_plugin_or_an_error() -> None:
    with pytest.raises(ValueError, match="exactly one of plugin= or error="):
        FakeEntryPoint("neither")
    with pytest.raises(ValueError, match="exactly one of plugin= or error="):
        FakeEntryPoint("both", plugin=object(), error=ImportError("x"))


def test_plugin_implementing_an_unknown_hook_is_broken_and_unregistered(capsys: pytest.CaptureFixture[str]) -> None:
    host = fresh_host(MisspelledHookPlugin(), names=["typo"])

    info = host.plugin("typo")
    assert info is not None
    assert info.status == "broken"
    assert info.reason == "implements unknown hook(s) himl_register_containerz"
    assert host.pm.get_plugin("typo") is None
    assert warning_lines(capsys.readouterr().err) == [f"himl: warning: {info.describe()}"]
    assert host.containers.names() == ["HelloWorld", "PlainHelloWorld"]


def test_plugin_whose_registration_hook_raises_is_broken_and_others_remain(
    capsys: pytest.CaptureFixture[str],
) -> None:
    host = fresh_host(
        ContainerPlugin("Before"),
        RaisingRegistrationPlugin(),
        ContainerPlugin("After"),
        names=["before", "raiser", "after"],
    )

    names = host.containers.names()

    info = host.plugin("raiser")
    assert info is not None
    assert info.status == "broken"
    assert info.reason == "himl_register_containers raised RuntimeError: the plugin's own bug"
    assert host.pm.get_plugin("raiser") is None
    assert {"HelloWorld", "Before", "After"} <= set(names)
    assert host.containers.entry("Before").plugin == "before"
    assert host.containers.entry("After").plugin == "after"
    assert warning_lines(capsys.readouterr().err) == [f"himl: warning: {info.describe()}"]
    # The other registries are collected without the broken plugin.
    assert "local" in host.compute_backends


def test_a_taken_name_rejects_only_that_entry_with_one_warning_naming_both(
    capsys: pytest.CaptureFixture[str],
) -> None:
    alpha = FakeEntryPoint("alpha", plugin=ContainerPlugin("Twin"), dist_name="himl-alpha", version="1.0")
    beta = FakeEntryPoint("beta", plugin=ContainerPlugin("Twin", "Single"), dist_name="himl-beta", version="2.0")

    host = host_with_entry_points(beta, alpha)  # discovery order does not matter: distribution name does

    assert host.containers.entry("Twin").plugin == "alpha"
    assert host.containers.entry("Single").plugin == "beta"  # the rest of beta works
    assert [p.status for p in host.plugins if p.name in ("alpha", "beta")] == ["ok", "ok"]
    assert warning_lines(capsys.readouterr().err) == [
        "himl: warning: model 'Twin' of plugin beta (himl-beta) is not registered: "
        "plugin alpha (himl-alpha) registered it first; pick one with himl-beta:Twin"
    ]
    assert [e.plugin for e in host.containers.rejected] == ["beta"]
    # Either one can be picked explicitly, by distribution or by plugin name.
    assert host.containers.entry("himl-beta:Twin").plugin == "beta"
    assert host.containers.entry("himl_Beta:Twin").plugin == "beta"  # distribution names compare normalised
    assert host.containers.entry("beta:Twin").plugin == "beta"
    assert host.containers.entry("himl-alpha:Twin").plugin == "alpha"
    assert host.containers.entry("alpha:Twin").plugin == "alpha"


def test_an_explicit_pick_that_matches_nothing_lists_what_does(capsys: pytest.CaptureFixture[str]) -> None:
    host = fresh_host(ContainerPlugin("Twin"), ContainerPlugin("Twin"), names=["alpha", "beta"])

    with pytest.raises(HimlError) as excinfo:
        host.containers.entry("gamma:Twin")
    assert (
        str(excinfo.value) == "no plugin or distribution 'gamma' registers model 'Twin'; known: alpha:Twin, beta:Twin"
    )
    with pytest.raises(UnknownNameError, match="unknown model 'alpha:Nothing'"):
        host.containers.entry("alpha:Nothing")
    with pytest.raises(HimlError, match="expected DIST:NAME or PLUGIN:NAME"):
        host.containers.entry(":Twin")


def test_a_plugin_reusing_a_builtin_name_loses_only_that_name() -> None:
    ep = FakeEntryPoint(
        "shadow", plugin=ContainerPlugin("PlainHelloWorld", "Shadowy"), dist_name="himl-shadow", version="9"
    )

    host = host_with_entry_points(ep)

    assert host.containers.entry("PlainHelloWorld").plugin == "hello"  # built-ins come first
    assert host.containers.get("PlainHelloWorld").__name__ == "PlainHelloWorld"
    assert host.broken == []
    assert host.containers.entry("Shadowy").plugin == "shadow"
    assert host.containers.entry("himl:PlainHelloWorld").plugin == "hello"
    assert host.containers.entry("himl-shadow:PlainHelloWorld").plugin == "shadow"


def test_registry_add_of_a_taken_name_keeps_the_first_and_sets_the_second_aside() -> None:
    registry: Registry[str] = Registry("model")
    registry.set_current_plugin("alpha", "himl-alpha")
    registry.add("Twin", "first")
    registry.set_current_plugin("beta", "himl-beta")

    second = registry.add("Twin", "second")

    assert registry.entry("Twin").target == "first"
    assert registry.names() == ["Twin"] and len(registry) == 1
    assert registry.rejected == [second]
    assert registry.take_clashes() == [
        "model 'Twin' of plugin beta (himl-beta) is not registered: plugin alpha (himl-alpha) registered it first; "
        "pick one with himl-beta:Twin"
    ]
    assert registry.take_clashes() == []  # each said once
    assert registry.entry("himl-beta:Twin") is second
    with pytest.raises(ValueError, match="may not contain ':'"):
        registry.add("a:b", "x")


def test_second_plugin_with_a_taken_plugin_name_is_broken(capsys: pytest.CaptureFixture[str]) -> None:
    first = FakeEntryPoint("same", plugin=ContainerPlugin("First"), dist_name="himl-first", version="1")
    second = FakeEntryPoint("same", plugin=ContainerPlugin("Second"), dist_name="himl-second", version="2")

    host = host_with_entry_points(first, second)

    statuses = [(p.distribution, p.status) for p in host.plugins if p.name == "same"]
    assert statuses == [("himl-first", "ok"), ("himl-second", "broken")]
    assert second.loads == 0
    assert "First" in host.containers
    assert "Second" not in host.containers
    assert warning_lines(capsys.readouterr().err) == [
        "himl: warning: plugin 'same' (himl-second 2) is broken: another plugin (himl-first 1) already uses this name"
    ]


# --- debugging switches ---------------------------------------------------------


def test_disabled_plugins_are_listed_as_disabled_and_never_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DISABLE, "extra, hello")
    ep = FakeEntryPoint("extra", plugin=ContainerPlugin("ExtraModel"), dist_name="himl-extra", version="0.3")

    host = build_host(entry_points=[ep])

    statuses = {p.name: p.status for p in host.plugins}
    assert statuses["extra"] == "disabled"
    assert statuses["hello"] == "disabled"
    assert statuses["local"] == "ok"
    info = host.plugin("extra")
    assert info is not None
    assert info.reason == f"listed in {ENV_DISABLE}"
    assert ep.loads == 0
    assert len(host.containers) == 0
    assert "local" in host.compute_backends
    assert host.broken == []


@pytest.fixture
def installed_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A plugin distribution 'installed' in a folder on sys.path: its module's name."""
    module = "himl_autoload_probe_plugin"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(
            """
            from himl_kernel import hookimpl

            @hookimpl
            def himl_register_containers(registry):
                registry.add("AutoloadProbe", "himl_autoload_probe_plugin:nothing", "found by discovery")
            """
        ),
        encoding="utf-8",
    )
    dist_info = tmp_path / "himl_autoload_probe-2.5.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: himl-autoload-probe\nVersion: 2.5\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(f"[himl]\nprobe = {module}\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield module
    sys.modules.pop(module, None)


def test_autoload_discovers_installed_distributions(installed_probe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_AUTOLOAD, raising=False)
    monkeypatch.delenv(ENV_DISABLE, raising=False)

    host = build_host()

    info = host.plugin("probe")
    assert info is not None
    assert (info.status, info.distribution, info.version, info.source) == (
        "ok",
        "himl-autoload-probe",
        "2.5",
        installed_probe,
    )
    assert host.containers.entry("AutoloadProbe").plugin == "probe"


def test_autoload_off_reads_no_entry_points(installed_probe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_AUTOLOAD, "0")

    host = build_host()

    assert host.plugin("probe") is None
    assert [p.name for p in host.plugins] == list(BUILTIN_PLUGINS)
    assert installed_probe not in sys.modules
    assert host.containers.names() == ["HelloWorld", "PlainHelloWorld"]


# --- tracing ---------------------------------------------------------------------


def test_trace_writes_hook_calls_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    host = fresh_host(ContainerPlugin("Traced"), names=["traced"], trace=True)

    assert "Traced" in host.containers
    assert host.detect_run({"HIML_BACKEND": "somewhere-else"}) is None

    lines = capsys.readouterr().err.splitlines()
    traced = [line for line in lines if line.startswith("himl trace:")]
    assert "himl trace: himl_register_containers <- plugin hello" in traced
    assert "himl trace: himl_register_containers <- plugin traced" in traced
    assert any("himl_detect_run" in line for line in traced)


def test_no_trace_lines_without_trace(capsys: pytest.CaptureFixture[str]) -> None:
    host = fresh_host(ContainerPlugin("Quiet"))

    assert "Quiet" in host.containers
    host.detect_run({})

    assert "himl trace:" not in capsys.readouterr().err


# --- lookups -----------------------------------------------------------------------


def test_unknown_model_lists_close_matches() -> None:
    host = fresh_host(ContainerPlugin("HelloWorlds", "Unrelated"))

    with pytest.raises(UnknownNameError) as excinfo:
        host.containers.get("HeloWorld")

    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith("unknown model 'HeloWorld'; did you mean 'HelloWorld', 'HelloWorlds', 'PlainHelloWorld'?")
    assert "known: HelloWorld, HelloWorlds, PlainHelloWorld, Unrelated" in message
    assert excinfo.value.known == ["HelloWorld", "HelloWorlds", "PlainHelloWorld", "Unrelated"]
    assert isinstance(excinfo.value, HimlError)


def test_a_descriptor_for_a_missing_module_fails_only_when_looked_up() -> None:
    class GhostPlugin:
        @hookimpl
        def himl_register_containers(self, registry: Registry[Any]) -> None:
            registry.add("Ghost", "himl_no_such_module_anywhere.models:Ghost", "imports a module that is not there")

    host = fresh_host(GhostPlugin(), names=["ghosts"])

    assert "Ghost" in host.containers  # listing is fine
    assert host.containers.entry("Ghost").is_lazy
    assert host.broken == []
    with pytest.raises(HimlError) as excinfo:
        host.containers.get("Ghost")

    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(
        "'Ghost' from plugin ghosts could not be loaded from himl_no_such_module_anywhere.models:Ghost"
    )
    assert "ModuleNotFoundError" in message
    assert host.containers.get("PlainHelloWorld").__name__ == "PlainHelloWorld"


def test_a_descriptor_imports_its_module_on_first_lookup_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = "himl_lazy_probe_models"
    (tmp_path / f"{module}.py").write_text("class LazyProbe:\n    pass\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)

    class LazyPlugin:
        @hookimpl
        def himl_register_containers(self, registry: Registry[Any]) -> None:
            registry.add("LazyProbe", f"{module}:LazyProbe")

    host = fresh_host(LazyPlugin())
    assert host.containers.names() == ["HelloWorld", "LazyProbe", "PlainHelloWorld"]
    assert module not in sys.modules

    loaded = host.containers.get("LazyProbe")

    assert module in sys.modules
    assert loaded is sys.modules[module].LazyProbe
    assert host.containers.get("LazyProbe") is loaded
    sys.modules.pop(module)
