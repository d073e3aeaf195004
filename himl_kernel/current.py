"""The current run of this process, and the plain metric-logging functions.

Inside a job, the kernel (or ``submit_if_needed``) activates the run: its
loggers are built from the logger hook, and :func:`log_metrics` /
:func:`log_params` send to all of them. Code that runs without Lightning (a
plain PyTorch loop, Fabric, a script) logs through these functions, and the
Lightning layer's logger does too, so every trainer gets the same two rules:

- **each (metric, step) once.** A run that is resumed after its process was
  killed trains again the epochs since its last recovery checkpoint. The
  first :func:`log_metrics` of a process reads the (metric, step) pairs the
  run already holds in its run store; after that the pairs are tracked in
  memory. A pair the run holds is dropped, so the history reads as if the run
  had never stopped. Metrics logged without a step are not de-duplicated
  (there is nothing to recognise them by).
- **global rank zero writes.** In a distributed job every process may call
  these functions; only global rank zero (see :mod:`himl_kernel.distributed`)
  writes, the others check the values and drop them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from himl_kernel.distributed import ranks
from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.contracts import MetricSink
    from himl_kernel.plugins import PluginHost
    from himl_kernel.runinfo import RunInfo

ENV_LOGGERS = "HIML_LOGGERS"


def logged_pairs(run: RunInfo) -> set[tuple[str, int]]:
    """Every (metric, step) ``run`` already holds in its run store (none when the store does not know it)."""
    from himl_kernel.runstore import RunStore

    store = RunStore(tracking_uri=run.tracking_uri)
    if not store.exists(run.run_id):
        return set()
    pairs: set[tuple[str, int]] = set()
    for key in store.get(run.run_id).metrics:
        pairs.update((key, step) for step, _ in store.metric_history(run.run_id, key))
    return pairs


@dataclass(eq=False)
class ActiveRun:
    """A run made current in this process, with the sinks its metrics go to."""

    info: RunInfo
    sinks: list[MetricSink] = field(default_factory=list)
    #: (metric, step) pairs the run holds: read from the run store on first use, then kept up to date.
    _logged: set[tuple[str, int]] | None = field(default=None, repr=False)

    def logged(self) -> set[tuple[str, int]]:
        if self._logged is None:
            try:
                self._logged = logged_pairs(self.info)
            except Exception as exc:  # the sinks may still work: log, rather than stop the training
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                print(
                    f"himl: warning: cannot read the metric history of run {self.info.run_id} ({first}); "
                    "metrics of steps it already holds may be logged again",
                    file=sys.stderr,
                )
                self._logged = set()
        return self._logged

    def log_metrics(self, metrics: Mapping[str, float], step: int | None) -> dict[str, float]:
        """Send the metrics the run does not hold yet at ``step`` to every sink; return those sent."""
        if step is None:
            fresh = dict(metrics)
        else:
            logged = self.logged()
            fresh = {key: value for key, value in metrics.items() if (key, step) not in logged}
        if fresh:
            for sink in self.sinks:
                sink.log_metrics(fresh, step)
            if step is not None:
                self.logged().update((key, step) for key in fresh)
        return fresh

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # closing a logger must not fail the run
                print(f"himl: warning: closing logger {type(sink).__name__} failed: {exc}", file=sys.stderr)


# The runs activated in this process, innermost last. Process state by nature:
# a job has one current run; nested activation happens only in tests.
_STACK: list[ActiveRun] = []


def selected_loggers(host: PluginHost) -> list[str]:
    """Logger names for a run: ``HIML_LOGGERS=a,b`` if set, else those registered with default=True."""
    wanted = os.environ.get(ENV_LOGGERS, "")
    if wanted.strip():
        names = [n.strip() for n in wanted.split(",") if n.strip()]
        for name in names:
            host.loggers.entry(name)  # unknown names fail with the known ones listed
        return names
    return [e.name for e in host.loggers if e.options.get("default", False)]


#: The logger hi-ml's ``--log_from_vm`` adds to a run on this machine (himl-azure-v2's: a mirror run in the workspace).
LOG_FROM_VM_LOGGER = "azureml"


def add_logger(host: PluginHost, name: str, why: str) -> list[str]:
    """Add logger ``name`` to the loggers of runs this process (and the processes it starts) activates.

    The choice travels in ``HIML_LOGGERS``, so a job the local backend runs
    in a child process attaches it too. A logger no plugin offers is one line
    naming ``why`` (the option that asked for it). Returns the loggers now selected.
    """
    try:
        host.loggers.entry(name)
    except HimlError:
        raise HimlError(
            f"{why} needs the {name!r} logger, which no installed plugin offers (pip install himl-azure-v2)"
        ) from None
    names = selected_loggers(host)
    if name not in names:
        names.append(name)
        os.environ[ENV_LOGGERS] = ",".join(names)
    return names


def activate(info: RunInfo, host: PluginHost | None = None, logger_names: list[str] | None = None) -> ActiveRun:
    """Make ``info`` the current run and attach its loggers."""
    if host is None:
        from himl_kernel.plugins import build_host

        host = build_host()
    names = selected_loggers(host) if logger_names is None else logger_names
    sinks: list[MetricSink] = []
    for name in names:
        factory = host.loggers.get(name)
        sink = factory(info)
        if sink is not None:
            sinks.append(sink)
    active = ActiveRun(info, sinks)
    _STACK.append(active)
    return active


def deactivate(active: ActiveRun) -> None:
    """Close the run's loggers and stop it being current."""
    active.close()
    if active in _STACK:
        _STACK.remove(active)


def current_run() -> RunInfo | None:
    """The RunInfo of the current run, if one is active."""
    return _STACK[-1].info if _STACK else None


def current_run_or_fail() -> RunInfo:
    """The RunInfo of the current run (activating the one a backend left in the environment), else an error."""
    return _active_or_fail().info


def _active_or_fail() -> ActiveRun:
    if _STACK:
        return _STACK[-1]
    from himl_kernel.runinfo import RunInfo

    info = RunInfo.from_environ(os.environ)
    if info is None:
        raise HimlError(
            "no run is active in this process: call himl_kernel.submit_if_needed() first, "
            "or start the script with `himl submit`"
        )
    return activate(info)


def current_sinks() -> list[MetricSink]:
    """The metric sinks of the current run."""
    return list(_active_or_fail().sinks)


def attach_sink(sink: MetricSink) -> None:
    """Send the current run's metrics and parameters to ``sink`` too, until :func:`detach_sink`.

    For a trainer layer with a sink of its own (the Lightning layer's
    TensorBoard event files); the sink gets the de-duplicated metrics.
    """
    active = _active_or_fail()
    if not any(existing is sink for existing in active.sinks):
        active.sinks.append(sink)


def detach_sink(sink: MetricSink) -> None:
    """Stop sending to ``sink`` (attached with :func:`attach_sink`); the caller closes it."""
    for active in _STACK:
        active.sinks[:] = [existing for existing in active.sinks if existing is not sink]


def _numbers(metrics: Mapping[str, float]) -> dict[str, float]:
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            clean[str(key)] = float(value)
        except (TypeError, ValueError):
            raise HimlError(f"metric {key!r} must be a number, got {value!r}") from None
    return clean


def _step(step: int | None) -> int | None:
    if step is None:
        return None
    try:
        number = int(step)
    except (TypeError, ValueError):
        raise HimlError(f"metric step must be a whole number, got {step!r}") from None
    if number != step or number < 0:
        raise HimlError(f"metric step must be a whole number of at least 0, got {step!r}")
    return number


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> dict[str, float]:
    """Log several metrics for the current run at ``step``; return those written.

    A (metric, step) the run already holds is dropped, and only global rank
    zero writes (see the module docs); the values are checked on every rank.
    """
    clean = _numbers(metrics)
    at = _step(step)
    if not ranks().is_global_zero:
        return {}
    return _active_or_fail().log_metrics(clean, at)


def log_metric(name: str, value: float, step: int | None = None) -> bool:
    """Log one metric for the current run; whether it was written (see :func:`log_metrics`)."""
    return bool(log_metrics({name: value}, step))


def flat_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``a.b`` keys, the shape MLflow params take."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flat_params(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def log_params(params: Mapping[str, Any]) -> None:
    """Log parameters (hyperparameters, settings) for the current run; nested mappings become ``a.b`` keys.

    Only global rank zero writes.
    """
    if not ranks().is_global_zero:
        return
    flat = flat_params(params)
    if not flat:
        return
    for sink in _active_or_fail().sinks:
        sink.log_params(flat)
