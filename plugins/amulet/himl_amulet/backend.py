"""The ``amulet`` compute backend: a JobSpec becomes ``amlt.yaml``, handed to ``amlt run``.

``render`` (``--dry-run``) prints the configuration and writes nothing.
``submit`` writes ``amlt.yaml`` at the snapshot root (Amulet uploads the folder
of its configuration, ``$CONFIG_DIR``) and, when ``amlt`` is installed, runs
``amlt run amlt.yaml EXPERIMENT -t TARGET`` there, as hi-ml's manual does by
hand; without ``amlt`` it says so in one line and gives that exact command.
"""

from __future__ import annotations

import shlex
import sys
from typing import TYPE_CHECKING

from himl_amulet.amlt import INSTALL_HINT, find_amlt
from himl_amulet.config import BACKEND, CONFIG_NAME, AmuletSettings, build_config, config_yaml, himl_setup
from himl_kernel.atomic import atomic_write_text
from himl_kernel.errors import HimlError
from himl_kernel.job import Submission

if TYPE_CHECKING:
    from himl_kernel.contracts import Host
    from himl_kernel.job import JobSpec


def warn_if_image_lacks_himl(job: JobSpec) -> None:
    """One line when the job's image has no himl, saying which setup command the configuration gained."""
    install = himl_setup(job)
    if install is not None:
        image = job.environment.docker_image or "the default image"
        print(
            f"himl: warning: {image} does not contain himl; the Amulet configuration installs it with the "
            f"setup command: {install} (name himl in --pip-requirements / --conda-file, or use an image with it, "
            "to choose how)",
            file=sys.stderr,
        )


def run_arguments(job: JobSpec, settings: AmuletSettings) -> list[str]:
    """The arguments of ``amlt`` that submit ``job``: ``run amlt.yaml EXPERIMENT -t TARGET``."""
    return ["run", CONFIG_NAME, job.experiment, "-t", settings.target]


class AmuletBackend:
    """Writes Amulet configurations and submits them with ``amlt``."""

    def render(self, job: JobSpec, host: Host) -> str:
        settings = AmuletSettings.of(job)
        document = build_config(job, settings)
        warn_if_image_lacks_himl(job)
        header = (
            f"# Amulet configuration; himl writes it as {job.snapshot.root / CONFIG_NAME} and runs, there:\n"
            f"#   amlt {shlex.join(run_arguments(job, settings))}\n"
        )
        return header + config_yaml(document)

    def submit(self, job: JobSpec, host: Host) -> Submission:
        settings = AmuletSettings.of(job)
        document = build_config(job, settings)
        warn_if_image_lacks_himl(job)
        path = job.snapshot.root / CONFIG_NAME
        try:
            atomic_write_text(path, config_yaml(document))
        except OSError as exc:
            raise HimlError(f"cannot write {path}: {exc.strerror or exc}") from None
        args = run_arguments(job, settings)
        amlt = find_amlt()
        folder = shlex.quote(str(job.snapshot.root))
        if amlt is None:
            print(
                f"himl: amlt is not on PATH, so the job was not submitted; wrote {path}; "
                f"submit it with: cd {folder} && amlt {shlex.join(args)}  ({INSTALL_HINT})",
                file=sys.stderr,
            )
            return Submission(backend=BACKEND, run_id=job.experiment, status="NOT_SUBMITTED")
        print(f"himl: wrote {path}; running amlt {shlex.join(args)} ({amlt.version})", file=sys.stderr)
        code = amlt.call(*args, cwd=job.snapshot.root)
        if code != 0:
            raise HimlError(f"amlt {shlex.join(args)} failed with exit code {code}; the configuration is {path}")
        follow = f"amlt status {shlex.quote(job.experiment)}"
        print(f"himl: follow it with: {follow}  (logs: amlt logs {shlex.quote(job.experiment)})", file=sys.stderr)
        return Submission(backend=BACKEND, run_id=job.experiment, url=follow, status="SUBMITTED")
