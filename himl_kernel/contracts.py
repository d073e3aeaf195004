"""What a plugin implements for each hook family, and what it is handed.

These are :class:`typing.Protocol` classes: a plugin's objects need the
methods, not the base class. Each is registered through its
``himl_register_*`` hook (see :mod:`himl_kernel.hookspecs`).

:class:`Host` is what those objects receive as ``host``: the part of
:class:`himl_kernel.plugins.PluginHost` a plugin may use. It is declared here,
not imported, so that this module depends on nothing that depends on it
(``plugins`` imports ``hookspecs`` and ``contracts``; neither imports ``plugins``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from himl_kernel.container import Container
    from himl_kernel.datasets import DatasetConfig
    from himl_kernel.job import JobSpec, Submission
    from himl_kernel.registry import Registry
    from himl_kernel.runinfo import RunInfo

DatasetRole = Literal["input", "output"]


@runtime_checkable
class ComputeBackend(Protocol):
    """Runs a JobSpec somewhere: here, on AzureML, on Singularity..."""

    def submit(self, job: JobSpec, host: Host) -> Submission:
        """Run or submit ``job``; return what was created and where to follow it."""
        ...

    def render(self, job: JobSpec, host: Host) -> str:
        """What ``--dry-run`` prints: the request this backend would make, as text."""
        ...


@runtime_checkable
class RunFiles(Protocol):
    """The files of a run kept outside the local run store (returned by ``himl_locate_run``)."""

    @property
    def where(self) -> str:
        """Where the run lives, in words (``AzureML workspace 'ws'``), for messages."""
        ...

    def download(self, path: str, dest: Path) -> Path:
        """Copy the run's files under ``path`` (``outputs``, ``logs``; empty: all) to ``dest/path``.

        Returns the local copy of ``path`` (``dest`` itself when ``path`` is empty),
        as MLflow's ``download_artifacts`` does.
        """
        ...


@runtime_checkable
class DatasetProvider(Protocol):
    """Makes a DatasetConfig available as a folder."""

    def prepare(
        self,
        dataset: DatasetConfig,
        *,
        role: DatasetRole,
        run: RunInfo | None,
        cache_dir: Path,
    ) -> Path | None:
        """The folder holding (input) or receiving (output) ``dataset``.

        Return ``None`` when this provider does not handle the dataset, so the
        next provider is asked; raise :class:`~himl_kernel.errors.HimlError`
        when it does handle it but cannot make it available.
        """
        ...


@runtime_checkable
class CheckpointSource(Protocol):
    """Turns a checkpoint reference into a local file."""

    def resolve(self, reference: str, *, cache_dir: Path, host: Host) -> Path | None:
        """The local file for ``reference``, or ``None`` when the form is not this source's."""
        ...


@runtime_checkable
class MetricSink(Protocol):
    """Where the current run's metrics and parameters go."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class LoggerFactory(Protocol):
    """Builds a MetricSink for a run, or returns None when it does not apply there."""

    def __call__(self, run: RunInfo) -> MetricSink | None: ...


@runtime_checkable
class Command(Protocol):
    """A ``himl`` subcommand contributed by a plugin (``himl cpath ...``)."""

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the subcommand's arguments (and sub-subcommands) to ``parser``."""
        ...

    def run(self, args: argparse.Namespace, host: Host) -> int:
        """Do the work; return the exit code."""
        ...


class Host(Protocol):
    """The plugin host as plugins' objects see it (``submit(job, host)``, ``run(args, host)``...)."""

    @property
    def compute_backends(self) -> Registry[ComputeBackend]: ...

    @property
    def dataset_providers(self) -> Registry[DatasetProvider]: ...

    @property
    def checkpoint_sources(self) -> Registry[CheckpointSource]: ...

    @property
    def containers(self) -> Registry[type[Container]]: ...

    @property
    def loggers(self) -> Registry[LoggerFactory]: ...

    @property
    def commands(self) -> Registry[Command]: ...

    def backend(self, name: str) -> ComputeBackend:
        """The compute backend registered as ``name``, instantiated."""
        ...

    def named_registry(self, name: str) -> Registry[Any]:
        """A registry some plugin declared (``himl_register_registries``), filled by all."""
        ...

    def detect_run(self, environ: Mapping[str, str] | None = None) -> RunInfo | None:
        """The current run when this process is a job, else None."""
        ...

    def locate_run(self, run_id: str) -> RunFiles | None:
        """A run outside the local store, found by a plugin."""
        ...

    def job_submitted(self, job: JobSpec, submission: Submission) -> None:
        """Tell the plugins that ``job`` was submitted."""
        ...

    def require_plugin(self, name: str) -> None:
        """Fail with the plugin's one line when it is broken."""
        ...
