"""One plugin never takes down the others: guarded hooks, owned options, clashes, named registries.

In-process tests drive a :class:`~himl_kernel.plugins.PluginHost` built by the
testing kit; ``test_plugin_isolation_cli.py`` runs the real ``himl`` with
misbehaving plugins installed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from himl_kernel import hookimpl
from himl_kernel.argparsing import HimlArgumentParser
from himl_kernel.cli.info_cmd import run_plugins
from himl_kernel.cli.job_options import add_job_options, build_job
from himl_kernel.doctor import DoctorReport
from himl_kernel.errors import HimlError, UnknownNameError
from himl_kernel.job import Entry, JobSpec, Submission
from himl_kernel.registry import Registry, RegistryCatalog
from himl_kernel.runinfo import RunInfo
from himl_kernel.testing import FakeEntryPoint, fresh_host, host_with_entry_points


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("himl: warning:")]


def a_run_info(run_id: str) -> RunInfo:
    return RunInfo(run_id=run_id, backend="test", output_folder=Path("out"), logs_folder=Path("logs"))


class Detects:
    """Recognises every environment as its own."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.calls = 0

    @hookimpl
    def himl_detect_run(self, environ: Mapping[str, str]) -> RunInfo | None:
        self.calls += 1
        return a_run_info(self.run_id)


class Raises:
    """Raises ``error`` in every hook it implements, counting the calls."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error or RuntimeError("the plugin's own bug\nand a second line nobody needs")
        self.calls: list[str] = []

    def _fail(self, hook: str) -> Any:
        self.calls.append(hook)
        raise self.error

    @hookimpl
    def himl_detect_run(self, environ: Mapping[str, str]) -> RunInfo | None:
        return self._fail("himl_detect_run")  # type: ignore[no-any-return]

    @hookimpl
    def himl_locate_run(self, run_id: str) -> object:
        return self._fail("himl_locate_run")

    @hookimpl
    def himl_add_options(self, parser: argparse._ArgumentGroup, command: str) -> None:
        parser.add_argument("--half-added", default="")
        self._fail("himl_add_options")

    @hookimpl
    def himl_configure_job(self, job: JobSpec, options: argparse.Namespace) -> None:
        job.tags["touched"] = "yes"
        self._fail("himl_configure_job")

    @hookimpl
    def himl_job_submitted(self, job: JobSpec, submission: Submission) -> None:
        self._fail("himl_job_submitted")

    @hookimpl
    def himl_doctor(self, report: DoctorReport) -> None:
        self._fail("himl_doctor")

    @hookimpl
    def himl_register_containers(self, registry: Registry[Any]) -> None:
        registry.add("RaisersModel", "himl_tests_not_imported:RaisersModel")


BROKEN_LINE = "plugin 'raiser' (registered in code) is broken: {hook} raised RuntimeError: the plugin's own bug"


def a_job() -> JobSpec:
    return JobSpec(entry=Entry("script", "train.py"))


# --- every hook is guarded ---------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda host: host.detect_run({}), id="himl_detect_run"),
        pytest.param(lambda host: host.locate_run("some-id"), id="himl_locate_run"),
        pytest.param(
            lambda host: host.add_options(argparse.ArgumentParser(), "run"),
            id="himl_add_options",
        ),
        pytest.param(lambda host: host.configure_job(a_job(), argparse.Namespace()), id="himl_configure_job"),
        pytest.param(lambda host: host.job_submitted(a_job(), Submission("local", "r1")), id="himl_job_submitted"),
        pytest.param(lambda host: host.doctor(DoctorReport()), id="himl_doctor"),
    ],
)
def test_a_plugin_raising_in_a_hook_is_named_in_one_line_broken_and_never_asked_again(
    call: Any, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = request.node.callspec.id
    raiser = Raises()
    host = fresh_host(raiser, names=["raiser"])
    assert "RaisersModel" in host.containers

    call(host)
    call(host)  # the second time the broken plugin is not asked

    assert raiser.calls == [hook]
    info = host.plugin("raiser")
    assert info is not None and info.status == "broken"
    expected = BROKEN_LINE.format(hook=hook)
    assert info.describe() == expected
    assert warning_lines(capsys.readouterr().err) == [f"himl: warning: {expected}"]
    # Its entries are gone, its other hooks are not called, and the others work.
    assert "RaisersModel" not in host.containers
    assert host.pm.get_plugin("raiser") is None
    assert host.containers.get("PlainHelloWorld").__name__ == "PlainHelloWorld"
    assert host.detect_run({}) is None
    assert raiser.calls == [hook]
    # `himl plugins` lists it as broken, with the same reason.
    run_plugins(argparse.Namespace(json=False, verbose=False), host)
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("raiser"))
    assert row.split()[1] == "broken" and row.endswith(f"{hook} raised RuntimeError: the plugin's own bug")


def test_first_result_hooks_keep_asking_the_plugins_after_a_broken_one(capsys: pytest.CaptureFixture[str]) -> None:
    raiser, second, third = Raises(), Detects("from-second"), Detects("from-third")
    host = fresh_host(raiser, second, third, names=["raiser", "second", "third"])

    found = host.detect_run({})

    assert found is not None and found.run_id == "from-second"  # the first non-None of the others
    assert (raiser.calls, second.calls, third.calls) == (["himl_detect_run"], 1, 0)
    assert host.detect_run({}).run_id == "from-second"  # type: ignore[union-attr]
    assert raiser.calls == ["himl_detect_run"]
    assert len(warning_lines(capsys.readouterr().err)) == 1


def test_a_himl_error_from_a_run_time_hook_is_the_users_error_and_breaks_nothing() -> None:
    raiser = Raises(HimlError("run 'x-1' is not in workspace 'ws'"))
    host = fresh_host(raiser, names=["raiser"])

    with pytest.raises(HimlError, match="run 'x-1' is not in workspace 'ws'"):
        host.locate_run("x-1")

    assert host.plugin("raiser").status == "ok"  # type: ignore[union-attr]


def test_a_himl_error_in_a_registration_hook_breaks_only_that_plugin() -> None:
    class Refuses:
        @hookimpl
        def himl_register_loggers(self, registry: Registry[Any]) -> None:
            raise HimlError("cannot register")

    host = fresh_host(Refuses(), names=["refuses"])

    assert "mlflow" in host.loggers
    assert host.plugin("refuses").reason == "himl_register_loggers raised HimlError: cannot register"  # type: ignore[union-attr]


def test_keyboard_interrupt_in_a_hook_still_interrupts() -> None:
    host = fresh_host(Raises(KeyboardInterrupt()), names=["raiser"])

    with pytest.raises(KeyboardInterrupt):
        host.detect_run({})


def test_sys_exit_in_a_hook_breaks_the_plugin_and_the_process_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    host = fresh_host(Raises(SystemExit(4)), names=["raiser"])

    host.job_submitted(a_job(), Submission("local", "r1"))

    assert host.plugin("raiser").reason == "himl_job_submitted raised SystemExit: 4"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (SystemExit(3), "raised on import: SystemExit: 3"),
        (SystemExit("the plugin gave up"), "raised on import: SystemExit: the plugin gave up"),
        (GeneratorExit(), "raised on import: GeneratorExit"),
        (ImportError("no sdk\nsecond line"), "raised on import: ImportError: no sdk"),
    ],
    ids=["exit-code", "exit-message", "base-exception", "import-error"],
)
def test_a_plugin_whose_import_exits_or_raises_any_base_exception_is_broken(
    error: BaseException, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ep = FakeEntryPoint("quitter", error=error, dist_name="himl-quitter", version="0.2")
    good = FakeEntryPoint("good", plugin=Detects("r"), dist_name="himl-good", version="1")

    host = host_with_entry_points(ep, good)

    info = host.plugin("quitter")
    assert info is not None and (info.status, info.reason) == ("broken", reason)
    assert warning_lines(capsys.readouterr().err) == [
        f"himl: warning: plugin 'quitter' (himl-quitter 0.2) is broken: {reason}"
    ]
    assert host.detect_run({}).run_id == "r"  # type: ignore[union-attr]


def test_keyboard_interrupt_during_a_plugin_import_is_not_swallowed() -> None:
    with pytest.raises(KeyboardInterrupt):
        host_with_entry_points(FakeEntryPoint("stopper", error=KeyboardInterrupt()))


def test_a_plugin_that_reorders_itself_is_refused() -> None:
    class Eager:
        @hookimpl(tryfirst=True)
        def himl_detect_run(self, environ: Mapping[str, str]) -> RunInfo | None:
            return a_run_info("eager")

    host = fresh_host(Eager(), names=["eager"])

    info = host.plugin("eager")
    assert info is not None and info.status == "broken"
    assert info.reason.startswith("marks himl_detect_run tryfirst, trylast or as a wrapper")
    assert host.detect_run({}) is None


# --- one precedence rule ------------------------------------------------------------


def test_precedence_is_builtins_then_installed_by_distribution_then_code() -> None:
    late = FakeEntryPoint("late", plugin=Detects("from-zeta"), dist_name="himl-zeta", version="1")
    early = FakeEntryPoint("early", plugin=Detects("from-alpha"), dist_name="Himl_Alpha", version="1")
    in_code = Detects("from-code")

    from himl_kernel.plugins import BUILTIN_PLUGINS, build_host

    host = build_host(autoload=False, entry_points=[late, early], extra_plugins={"code": in_code}, environ={})

    assert [p.name for p in host.plugins] == [*BUILTIN_PLUGINS, "early", "late", "code"]
    assert host.detect_run({}).run_id == "from-alpha"  # type: ignore[union-attr]
    # pluggy's own call order is the same: a plain pm.hook call agrees with the host.
    assert host.pm.hook.himl_detect_run(environ={}).run_id == "from-alpha"
    assert [impl.plugin_name for impl in host._impls("himl_detect_run")] == ["local", "early", "late", "code"]


# --- options belong to their plugin ----------------------------------------------------


class AddsOptions:
    def __init__(self, *options: str) -> None:
        self.options = options

    @hookimpl
    def himl_add_options(self, parser: argparse._ArgumentGroup, command: str) -> None:
        for option in self.options:
            parser.add_argument(option, default="")


def test_each_plugin_gets_its_own_group_and_a_shared_option_string_is_refused_for_both(
    capsys: pytest.CaptureFixture[str],
) -> None:
    host = fresh_host(
        AddsOptions("--twin-level", "--alpha-only"),
        AddsOptions("--twin-level", "--beta-only"),
        names=["alpha", "beta"],
    )
    parser = HimlArgumentParser(prog="himl run", add_help=False)
    add_job_options(parser, host, "run")

    assert warning_lines(capsys.readouterr().err) == [
        "himl: warning: option --twin-level is added by plugins 'alpha' (registered in code) and "
        "'beta' (registered in code); neither is added"
    ]
    assert host.option_owners == {"--no-resume": "local", "--alpha-only": "alpha", "--beta-only": "beta"}
    titles = [group.title for group in parser._action_groups]
    assert "options of plugin alpha (registered in code)" in titles
    assert "options of plugin beta (registered in code)" in titles
    with pytest.raises(HimlError, match="unrecognized arguments: --twin-level"):
        parser.parse_args(["--twin-level", "3"])
    parsed = parser.parse_args(["--alpha-only", "a", "--beta-only", "b"])
    assert (parsed.alpha_only, parsed.beta_only) == ("a", "b")


def test_a_plugin_option_that_the_kernel_has_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    host = fresh_host(AddsOptions("--cluster", "--mine-only"), names=["squatter"])
    parser = HimlArgumentParser(prog="himl run", add_help=False)
    add_job_options(parser, host, "run")

    assert warning_lines(capsys.readouterr().err) == [
        "himl: warning: option --cluster of plugin 'squatter' (registered in code) is not added: "
        "the kernel has it (shared options are read from the JobSpec)"
    ]
    assert host.option_owners["--mine-only"] == "squatter"
    job = build_job(parser.parse_args(["--cluster", "c1"]), host, entry=Entry("script", "t.py"), experiment="e")
    assert job.compute.target == "c1"  # the kernel's meaning


def test_two_plugins_sharing_only_a_destination_are_refused_too(capsys: pytest.CaptureFixture[str]) -> None:
    host = fresh_host(AddsOptions("--foo-bar"), AddsOptions("--foo_bar"), names=["a", "b"])

    host.add_options(argparse.ArgumentParser(), "run")

    (line,) = warning_lines(capsys.readouterr().err)
    assert line.startswith("himl: warning: option destination 'foo_bar' is added by plugins 'a'")
    assert host.option_owners == {"--no-resume": "local"}


def test_a_plugin_raising_in_add_options_adds_none_of_its_options() -> None:
    host = fresh_host(Raises(), names=["raiser"])
    parser = argparse.ArgumentParser()

    host.add_options(parser, "run")

    assert "--half-added" not in parser.format_help()


# --- registry clashes and explicit picks --------------------------------------------------


class HasModels:
    def __init__(self, **targets: str) -> None:
        self.targets = targets

    @hookimpl
    def himl_register_containers(self, registry: Registry[Any]) -> None:
        for name, target in self.targets.items():
            registry.add(name, target)


def test_a_dotted_path_imports_a_container_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "himl_dotted_probe"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "configs.py").write_text(
        "from himl_kernel.container import Container\n\n"
        "class Probe(Container):\n    size: int = 3\n\n"
        "class NotAContainer:\n    instances = 0\n\n"
        "    def __init__(self):\n        NotAContainer.instances += 1\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    host = fresh_host()

    cls = host.containers.get("himl_dotted_probe.configs.Probe")

    assert cls.__name__ == "Probe" and cls().size == 3  # type: ignore[attr-defined]
    with pytest.raises(HimlError) as excinfo:
        host.containers.get("himl_dotted_probe.configs.NotAContainer")
    assert str(excinfo.value) == (
        "model 'himl_dotted_probe.configs.NotAContainer' is <class 'himl_dotted_probe.configs.NotAContainer'>, "
        "which is not a subclass of himl_kernel.container.Container"
    )
    assert sys.modules["himl_dotted_probe.configs"].NotAContainer.instances == 0  # refused before instantiating
    with pytest.raises(HimlError, match=r"module 'himl_dotted_probe\.configs' has no attribute 'Missing'"):
        host.containers.get("himl_dotted_probe.configs.Missing")
    with pytest.raises(HimlError, match=r"module 'himl_no_such_pkg' raised ModuleNotFoundError"):
        host.containers.get("himl_no_such_pkg.Model")
    for module in ("himl_dotted_probe.configs", "himl_dotted_probe"):
        sys.modules.pop(module, None)


@pytest.mark.parametrize("name", ["not a path.Model", "1pkg.Model", "pkg..Model", "Model", "pkg.Model-2"])
def test_a_name_that_is_no_dotted_path_is_an_unknown_model(name: str) -> None:
    host = fresh_host()

    with pytest.raises(UnknownNameError, match=f"unknown model '{name}'"):
        host.containers.get(name)


def test_a_module_and_function_in_model_syntax_is_an_unknown_model_and_never_called() -> None:
    host = fresh_host()

    with pytest.raises(UnknownNameError, match="unknown model 'os:system'"):
        host.containers.get("os:system")


# --- named registries ------------------------------------------------------------------


class OffersEncoders:
    @hookimpl
    def himl_register_registries(self, registries: RegistryCatalog) -> None:
        registries.declare("image_encoders", "image encoder", "encoders that turn a tile into a vector")

    @hookimpl
    def himl_register_entries(self, name: str, registry: Registry[Any]) -> None:
        if name == "image_encoders":
            registry.add("resnet18", "himl_ssl_not_imported:resnet18", "ImageNet ResNet-18")


class FillsEncoders:
    def __init__(self, declare_too: bool = False) -> None:
        self.declare_too = declare_too

    @hookimpl
    def himl_register_registries(self, registries: RegistryCatalog) -> None:
        if self.declare_too:
            registries.declare("image_encoders", "encoder", "a second declaration")

    @hookimpl
    def himl_register_entries(self, name: str, registry: Registry[Any]) -> None:
        if name == "image_encoders":
            registry.add("simclr", "himl_other_not_imported:simclr", "SimCLR tiles")


def test_a_plugin_fills_and_lists_another_plugins_named_registry(capsys: pytest.CaptureFixture[str]) -> None:
    host = fresh_host(OffersEncoders(), FillsEncoders(declare_too=True), names=["ssl", "cpath"])

    encoders = host.named_registry("image_encoders")

    assert encoders.names() == ["resnet18", "simclr"]
    assert {e.name: e.plugin for e in encoders} == {"resnet18": "ssl", "simclr": "cpath"}
    assert host.registry_declarations["image_encoders"].plugin == "ssl"
    assert host.named_registry("image_encoders") is encoders
    assert warning_lines(capsys.readouterr().err) == [
        "himl: warning: named registry 'image_encoders' of plugin cpath (registered in code) is ignored: "
        "plugin ssl (registered in code) declared it first"
    ]
    with pytest.raises(
        UnknownNameError,
        match=r"unknown named registry 'text_encoders'; did you mean 'image_encoders'\?; known: image_encoders",
    ):
        host.named_registry("text_encoders")
    with pytest.raises(UnknownNameError, match="unknown image encoder 'vit'"):
        encoders.get("vit")

    run_plugins(argparse.Namespace(json=False, verbose=True), host)
    out = capsys.readouterr().out
    assert "  image_encoders (image encoder) of plugin ssl: encoders that turn a tile into a vector" in out
    assert "    resnet18  [ssl]  ImageNet ResNet-18" in out
    assert "    simclr  [cpath]  SimCLR tiles" in out


def test_a_named_registry_of_a_broken_plugin_is_gone_with_it(capsys: pytest.CaptureFixture[str]) -> None:
    class OffersThenFails(OffersEncoders):
        @hookimpl
        def himl_register_loggers(self, registry: Registry[Any]) -> None:
            raise RuntimeError("late failure")

    host = fresh_host(OffersThenFails(), FillsEncoders(), names=["ssl", "cpath"])
    assert "image_encoders" in host.registry_declarations
    assert "mlflow" in host.loggers  # breaks ssl

    with pytest.raises(UnknownNameError) as excinfo:
        host.named_registry("image_encoders")
    assert "plugin 'ssl' (registered in code) is broken: himl_register_loggers raised RuntimeError" in str(
        excinfo.value
    )


# --- the testing kit's distribution writer ------------------------------------------------


def test_write_distribution_is_found_by_real_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from himl_kernel.plugins import build_host
    from himl_kernel.testing import write_distribution

    source = """
        from himl_kernel import hookimpl

        @hookimpl
        def himl_register_loggers(registry):
            registry.add("written", "himl_written_probe.plugin:nothing", "from a written distribution")
        """
    write_distribution(
        tmp_path,
        "himl-written-probe",
        "3.2",
        {"written": "himl_written_probe.plugin"},
        {"himl_written_probe/__init__.py": "", "himl_written_probe/plugin.py": source},
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    host = build_host(environ={})

    info = host.plugin("written")
    assert info is not None and (info.status, info.distribution, info.version) == ("ok", "himl-written-probe", "3.2")
    assert host.loggers.entry("written").plugin == "written"
    for module in ("himl_written_probe.plugin", "himl_written_probe"):
        sys.modules.pop(module, None)


@pytest.mark.parametrize(
    ("name", "version", "files", "message"),
    [
        ("himl foo", "1", {}, "'himl foo' is not a distribution name"),
        ("himl-foo", "1 0", {}, "'1 0' is not a version"),
        ("himl-foo", "1", {"../outside.py": ""}, "'../outside.py' is outside"),
    ],
)
def test_write_distribution_refuses_what_no_installer_would_write(
    tmp_path: Path, name: str, version: str, files: dict[str, str], message: str
) -> None:
    from himl_kernel.testing import write_distribution

    with pytest.raises(ValueError, match=message):
        write_distribution(tmp_path / "site", name, version, {"foo": "himl_foo"}, files)
    assert not (tmp_path / "outside.py").exists()


def test_a_model_module_that_exits_on_import_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "himl_exiting_models.py").write_text("import sys\n\nsys.exit(5)\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    host = fresh_host(HasModels(Exits="himl_exiting_models:Exits"), names=["exits"])

    with pytest.raises(HimlError) as excinfo:
        host.containers.get("Exits")
    assert str(excinfo.value) == (
        "'Exits' from plugin exits could not be loaded from himl_exiting_models:Exits: SystemExit: 5"
    )
    with pytest.raises(HimlError, match="module 'himl_exiting_models' raised SystemExit: 5"):
        host.containers.get("himl_exiting_models.Exits")
    assert host.containers.get("PlainHelloWorld").__name__ == "PlainHelloWorld"


def test_a_name_held_by_a_plugin_that_breaks_later_goes_to_the_next_plugin() -> None:
    class HoldsThenBreaks(HasModels):
        @hookimpl
        def himl_register_loggers(self, registry: Registry[Any]) -> None:
            raise RuntimeError("late failure")

    host = fresh_host(
        HoldsThenBreaks(Twin="himl_tests_not_imported:A"),
        HasModels(Twin="himl_tests_not_imported:B"),
        names=["first", "second"],
    )
    assert host.containers.entry("Twin").plugin == "first"

    assert "mlflow" in host.loggers  # breaks the first

    assert host.containers.entry("Twin").plugin == "second"
    assert host.containers.rejected == []
