"""The current run of this process, and the plain metric-logging functions.

Inside a job, the kernel (or ``submit_if_needed``) activates the run: its
loggers are built from the logger hook, and :func:`log_metrics` /
:func:`log_params` send to all of them. Code that runs without Lightning (a
plain PyTorch loop, a script) logs through these functions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.contracts import MetricSink
    from himl_kernel.plugins import PluginHost
    from himl_kernel.runinfo import RunInfo

ENV_LOGGERS = "HIML_LOGGERS"


@dataclass
class ActiveRun:
    info: RunInfo
    sinks: list[MetricSink] = field(default_factory=list)

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
    """The metric sinks of the current run, for layers that log on their own (the Lightning logger)."""
    return list(_active_or_fail().sinks)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log several metrics for the current run at ``step``."""
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            clean[str(key)] = float(value)
        except (TypeError, ValueError):
            raise HimlError(f"metric {key!r} must be a number, got {value!r}") from None
    for sink in _active_or_fail().sinks:
        sink.log_metrics(clean, step)


def log_metric(name: str, value: float, step: int | None = None) -> None:
    """Log one metric for the current run."""
    log_metrics({name: value}, step)


def log_params(params: Mapping[str, Any]) -> None:
    """Log parameters (hyperparameters, settings) for the current run."""
    for sink in _active_or_fail().sinks:
        sink.log_params(params)
