"""Running a container inside a job: activate the run, log its settings, call run()."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from himl_kernel.current import activate, deactivate, flat_params

if TYPE_CHECKING:
    from himl_kernel.container import Container
    from himl_kernel.plugins import PluginHost
    from himl_kernel.runinfo import RunInfo

#: The file in a run's outputs that holds its resolved configuration.
CONFIG_FILE = "config.yaml"


def run_container(host: PluginHost, container: Container, run_info: RunInfo) -> None:
    """Run ``container`` as the current run, with its loggers attached.

    Its resolved fields go to ``outputs/config.yaml`` first, in the form
    ``himl run --model NAME --config outputs/config.yaml`` reads back.
    """
    import sys

    from pydantic_core import PydanticSerializationError, to_jsonable_python

    from himl_kernel.errors import HimlError
    from himl_kernel.fields import write_config

    try:
        write_config(container, run_info.output_folder / CONFIG_FILE)
    except (PydanticSerializationError, HimlError) as exc:  # a field of a type YAML cannot hold: say so, and run
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"himl: warning: outputs/{CONFIG_FILE} not written: {first}", file=sys.stderr)
    active = activate(run_info, host)
    try:
        params = flat_params(to_jsonable_python(container, fallback=repr))  # an opaque value: its repr
        for sink in active.sinks:
            sink.log_params(params)
        container.run(run_info)
    finally:
        deactivate(active)


def load_container(host: PluginHost, name: str, args: list[str], config_file: Any = None) -> Container:
    """The container registered as ``name``, with its fields parsed from ``args``."""
    from himl_kernel.container import Container
    from himl_kernel.errors import HimlError
    from himl_kernel.fields import parse_fields

    cls = host.containers.get(name)
    if not (isinstance(cls, type) and issubclass(cls, Container)):
        raise HimlError(
            f"model {name!r} is registered as {cls!r}, which is not a himl_kernel.container.Container class"
        )
    instance: Container = parse_fields(cls, args, config_file=config_file, prog=f"himl run --model {name}")
    return instance
