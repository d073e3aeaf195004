"""The hooks a himl plugin can implement.

Every hook is named ``himl_*``. Implement one by writing a module-level
function (or a method of an object) with the same name and decorating it with
``himl_kernel.hookimpl``; you may accept fewer arguments than the spec lists.
Only the kernel calls hooks, through :class:`himl_kernel.plugins.PluginHost`.

Registration hooks (``himl_register_*``) receive a
:class:`~himl_kernel.registry.Registry`: add named descriptors to it, ideally
as ``"package.module:attribute"`` import paths, so that nothing heavy is
imported until a command uses that name. Every implementation of a
registration hook is called; the others say whether the first non-None result wins.

Precedence, one rule for every hook and every registry:

1. the kernel's built-in plugins, in the order of
   :data:`himl_kernel.plugins.BUILTIN_PLUGINS`;
2. installed plugins (entry points of group ``himl``), sorted by distribution
   name (compared as packaging normalises it), then by entry-point name;
3. plugins registered in code (``build_host(extra_plugins=...)``, the testing
   kit), in the order given.

Hooks are called in that order, so the earlier plugin's result wins a
first-result hook and the earlier plugin keeps a registry name: a later
plugin's entry of the same name is rejected alone (one warning names both
distributions) and stays reachable as ``DIST:NAME`` or ``PLUGIN:NAME``
(``himl run --model himl-foo:DeepMIL``). pluggy is given the plugins in
reverse, so that its own last-registered-first call order is this order too;
``tryfirst``, ``trylast`` and hook wrappers are refused (the plugin is
reported broken), because they would make the order depend on the plugin.

Every call is guarded: a plugin that raises in any hook (``sys.exit``
included) is named in one line, with its distribution, version, the hook and
the exception, and is broken for the rest of the process: its entries go, it
is not asked again, ``himl plugins`` shows it as broken. Raise
:class:`~himl_kernel.errors.HimlError` from a run-time hook
(``himl_detect_run``, ``himl_locate_run``, ``himl_configure_job``,
``himl_job_submitted``) to stop the command with a one-line message to the
user instead.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pluggy

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
    from himl_kernel.registry import Registry, RegistryCatalog
    from himl_kernel.runinfo import RunInfo

PROJECT = "himl"
hookspec = pluggy.HookspecMarker(PROJECT)

# --- compute backends ------------------------------------------------------


@hookspec
def himl_register_compute_backends(registry: Registry[ComputeBackend]) -> None:
    """Register compute backends by name (``local``, ``azureml``...).

    Args:
        registry: add each backend with ``registry.add(name, "pkg.mod:Backend",
            description)``. The target is a class (instantiated with no
            arguments) or an object with ``submit`` and ``render`` (see
            :class:`~himl_kernel.contracts.ComputeBackend`). Option
            ``script_flag="--azureml"`` makes ``submit_if_needed`` choose the
            backend when that flag is on a script's command line. Option
            ``honours=("cluster", "num_nodes", ...)`` names the kernel's
            shared options (:mod:`himl_kernel.shared_options`) the backend
            reads from the JobSpec; a job that sets any other to a
            non-default value is refused before submission. Without it the
            backend is taken to honour them all.

    Returns:
        Nothing; every implementation is called.
    """


@hookspec(firstresult=True)
def himl_detect_run(environ: Mapping[str, str]) -> RunInfo | None:
    """Recognise that this process runs inside a job of your backend.

    Args:
        environ: the process environment (``os.environ``, or a test's dict).

    Returns:
        The RunInfo of the current run when the environment is your
        backend's, else None. The first non-None result wins; keep the check
        cheap and import heavy libraries only once it has matched.
    """


@hookspec(firstresult=True)
def himl_locate_run(run_id: str) -> RunFiles | None:
    """Find a run that is not in the local run store (an AzureML job, say).

    ``himl runs download`` and ``himl tb`` ask this when the id is unknown locally.

    Args:
        run_id: the run id the user gave.

    Returns:
        An object with ``download(path, dest)`` (see
        :class:`~himl_kernel.contracts.RunFiles`) when the run is your
        backend's, else None. The first non-None result wins; raise
        :class:`~himl_kernel.errors.HimlError` when the id has your backend's
        form but the run does not exist.
    """


# --- dataset providers -----------------------------------------------------


@hookspec
def himl_register_dataset_providers(registry: Registry[DatasetProvider]) -> None:
    """Register providers that turn a DatasetConfig into a folder.

    Args:
        registry: add each provider with ``registry.add(name, target,
            description, priority=N)``. Providers are asked in priority order
            (highest first) until one returns a folder (see
            :class:`~himl_kernel.contracts.DatasetProvider`).

    Returns:
        Nothing; every implementation is called.
    """


# --- checkpoint sources ------------------------------------------------------


@hookspec
def himl_register_checkpoint_sources(registry: Registry[CheckpointSource]) -> None:
    """Register sources that turn a checkpoint reference into a local file.

    Args:
        registry: add each source with ``registry.add(name, target,
            description, priority=N)``. Sources are asked in priority order
            (highest first); the first that returns a path wins (see
            :class:`~himl_kernel.contracts.CheckpointSource`).

    Returns:
        Nothing; every implementation is called.
    """


# --- containers ------------------------------------------------------------


@hookspec
def himl_register_containers(registry: Registry[type[Container]]) -> None:
    """Register named experiment configurations (``himl models`` lists them).

    Args:
        registry: add each container class with ``registry.add(name,
            "pkg.mod:MyContainer", description)``; the class derives from
            :class:`himl_kernel.container.Container`.

    Returns:
        Nothing; every implementation is called.
    """


# --- loggers ---------------------------------------------------------------


@hookspec
def himl_register_loggers(registry: Registry[LoggerFactory]) -> None:
    """Register metric sinks for the current run.

    Args:
        registry: add each logger factory with ``registry.add(name, target,
            description, default=True)``. A factory receives the RunInfo and
            returns a :class:`~himl_kernel.contracts.MetricSink`, or None when
            it does not apply there. Loggers with ``default=True`` are active
            unless the run names its loggers (``HIML_LOGGERS=a,b``).

    Returns:
        Nothing; every implementation is called.
    """


# --- command line ----------------------------------------------------------


@hookspec
def himl_add_options(parser: argparse._ArgumentGroup, command: str) -> None:
    """Add the options that are your plugin's own to a job-submitting command.

    Options several backends share are the kernel's and are already there,
    carried in the JobSpec: ``--cluster`` (``job.compute.target``),
    ``--num-nodes``, ``--processes-per-node``, ``--conda-file``,
    ``--pip-requirements``, ``--docker-image``, ``--shm-size``,
    ``--max-run-duration`` and ``--no-wait`` (see
    :mod:`himl_kernel.shared_options`). Read them from the job in
    :func:`himl_configure_job`; do not add them again.

    Args:
        parser: an argument group of your plugin's own; ``himl run --help``
            shows it under your plugin's name. Prefix option names with your
            plugin's topic (``--distribution`` is fine for a compute plugin,
            ``--azureml-workspace`` better). An option string or destination
            that another plugin or the kernel also adds is registered for
            neither, with one warning naming both.
        command: ``"run"`` or ``"submit"``.

    Returns:
        Nothing; every implementation is called. Read the values back in
        :func:`himl_configure_job`.
    """


@hookspec
def himl_configure_job(job: JobSpec, options: argparse.Namespace) -> None:
    """Amend a JobSpec before it is submitted.

    Args:
        job: the job as the kernel built it; change it in place (compute
            target, environment, tags...).
        options: the parsed command line, including the options your plugin
            added in :func:`himl_add_options`.

    Returns:
        Nothing; every implementation is called, in plugin registration order.
    """


@hookspec
def himl_job_submitted(job: JobSpec, submission: Submission) -> None:
    """Learn that a job was submitted (or, for the local backend, has run).

    Args:
        job: the JobSpec the backend received.
        submission: what the backend reported: run id, URL, status.

    Returns:
        Nothing; every implementation is called.
    """


@hookspec
def himl_register_commands(registry: Registry[Command]) -> None:
    """Add ``himl`` subcommands (``himl cpath tile ...``).

    Args:
        registry: add each subcommand with ``registry.add(name,
            "pkg.mod:command_object", help_line)``; the target has
            ``configure(parser)`` and ``run(args, host)`` (see
            :class:`~himl_kernel.contracts.Command`). It is loaded only when
            that subcommand runs.

    Returns:
        Nothing; every implementation is called.
    """


@hookspec
def himl_doctor(report: DoctorReport) -> None:
    """Add checks to ``himl doctor``.

    Args:
        report: call ``report.ok(topic, detail)``, ``report.missing(topic,
            detail, fix)`` or ``report.problem(topic, detail, fix)`` for each
            thing your plugin needs (an SDK, a config file, credentials).

    Returns:
        Nothing; every implementation is called.
    """


# --- named registries that plugins offer each other --------------------------------


@hookspec
def himl_register_registries(registries: RegistryCatalog) -> None:
    """Declare named registries that other plugins fill and read (image encoders, say).

    A plugin that offers an extension point declares it here; any plugin adds
    to it in :func:`himl_register_entries`, and any plugin lists or loads its
    entries with ``host.named_registry(name)``, so no plugin imports another
    plugin's modules. ``himl plugins --verbose`` lists them with their entries.

    Args:
        registries: call ``registries.declare(name, kind, description)`` for
            each registry your plugin offers (``declare("image_encoders",
            "image encoder", "encoders that turn a tile into a vector")``).
            A name another plugin declared first stays theirs.

    Returns:
        Nothing; every implementation is called.
    """


@hookspec
def himl_register_entries(name: str, registry: Registry[object]) -> None:
    """Add entries to a named registry that some plugin declared.

    Called once for each named registry, the first time a command asks for it
    (``host.named_registry(name)``), never at start-up.

    Args:
        name: the registry's declared name (``image_encoders``); add only to
            the registries you mean to fill.
        registry: add entries as to any registry: ``registry.add(entry_name,
            "pkg.mod:factory", description)``; what an entry must be is for
            the declaring plugin to document.

    Returns:
        Nothing; every implementation is called.
    """
