"""Running a container inside a job: activate the run, log its settings, call run().

The container runs with its run's outputs folder as the working directory, as
hi-ml's runner does: a file the model writes to ``.`` is kept with the run.
Relative paths in its fields are made absolute first, against the folder the
job started in, so that they still name what the user meant. Processes the
model starts (Lightning's DDP workers re-run the ``himl run`` command line)
find the folder the job started in as ``HIML_LAUNCH_FOLDER``, and ``himl run``
goes back there before it reads its command line.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from himl_kernel.current import activate, deactivate, flat_params

if TYPE_CHECKING:
    from himl_kernel.container import Container
    from himl_kernel.plugins import PluginHost
    from himl_kernel.runinfo import RunInfo

#: The file in a run's outputs that holds its resolved configuration.
CONFIG_FILE = "config.yaml"
#: The folder a job started in, while its container runs in its outputs folder.
ENV_LAUNCH_FOLDER = "HIML_LAUNCH_FOLDER"


@contextlib.contextmanager
def working_directory(folder: Path) -> Iterator[None]:
    """Run the block in ``folder``, with ``HIML_LAUNCH_FOLDER`` naming where we were; both restored after."""
    here = Path.cwd()
    saved = os.environ.get(ENV_LAUNCH_FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_LAUNCH_FOLDER] = saved or str(here)
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)
        if saved is None:
            os.environ.pop(ENV_LAUNCH_FOLDER, None)
        else:
            os.environ[ENV_LAUNCH_FOLDER] = saved


def return_to_launch_folder() -> None:
    """In a process a running container started (a DDP worker): go to the folder the job started in."""
    launch = os.environ.get(ENV_LAUNCH_FOLDER)
    if launch and Path(launch).is_dir():
        os.chdir(launch)


def run_container(host: PluginHost, container: Container, run_info: RunInfo) -> None:
    """Run ``container`` as the current run, with its loggers attached.

    Its resolved fields go to ``outputs/config.yaml`` first, in the form
    ``himl run --model NAME --config outputs/config.yaml`` reads back.
    """
    import sys

    from pydantic_core import PydanticSerializationError, to_jsonable_python

    from himl_kernel.errors import HimlError
    from himl_kernel.fields import write_config

    container.make_paths_absolute(Path.cwd())
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
        with working_directory(run_info.output_folder):
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
