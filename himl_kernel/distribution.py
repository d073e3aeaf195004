"""Which installed distribution the running kernel belongs to, and whether the ``himl`` installed is this one.

The name ``himl`` on the public package index belongs to another project (a
hierarchical YAML configuration tool, with releases from 0.1.15 to 0.22.0 and
its own ``himl`` command). An install that can see that index may take it
instead of this kernel without a word, since its versions are higher. This
module tells the two apart by what the distribution declares: ours has the
console script ``himl = himl_kernel.cli.main:main``. ``himl --version`` and
``himl doctor`` print what it finds, so the mix-up is never silent.

Only :mod:`importlib.metadata` is read; nothing is imported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from himl_kernel.doctor import DoctorReport

#: The distribution name this kernel is published under.
DISTRIBUTION = "himl"
#: The console script that only this kernel's distribution declares.
CONSOLE_SCRIPT = "himl_kernel.cli.main:main"
#: How to get this kernel rather than the public index's ``himl``.
HOW_TO_INSTALL = (
    "from a checkout: pip install -r requirements-dev.txt; from a wheelhouse: "
    "pip install --no-index --find-links WHEELHOUSE 'himl[cpath]==0.1.*'"
)


@dataclass(frozen=True)
class KernelInstall:
    """Where the running kernel lies, and what the installed ``himl`` distribution is.

    ``distribution_version`` is None when no distribution named ``himl`` is
    installed (the kernel is imported from a source folder on ``sys.path``).
    ``foreign`` says why the installed ``himl`` is another project, or is None
    when it is this kernel's. ``editable_from`` is the source folder of an
    editable install.
    """

    version: str
    package_dir: Path
    distribution_version: str | None
    distribution_dir: Path | None
    editable_from: Path | None
    foreign: str | None

    @property
    def is_ours(self) -> bool:
        return self.distribution_version is not None and self.foreign is None

    def where(self) -> str:
        """A few words on where the kernel comes from."""
        if self.foreign is not None:
            return f"package at {self.package_dir}; {self.foreign}"
        if self.distribution_version is None:
            return f"package at {self.package_dir}; no distribution {DISTRIBUTION!r} is installed (run from source)"
        if self.editable_from is not None:
            return f"distribution {DISTRIBUTION} {self.distribution_version}, editable from {self.editable_from}"
        return f"distribution {DISTRIBUTION} {self.distribution_version} in {self.distribution_dir}"

    def version_line(self) -> str:
        """What ``himl --version`` prints."""
        return f"himl {self.version} (himl kernel; {self.where()})"


def inspect_kernel(distribution: metadata.Distribution | None = None) -> KernelInstall:
    """Describe the running kernel and the installed ``himl`` distribution.

    ``distribution`` defaults to the one :func:`importlib.metadata.distribution`
    finds for ``himl``; tests pass a :class:`importlib.metadata.PathDistribution`
    of their own.
    """
    from himl_kernel.version import __version__

    package_dir = Path(__file__).resolve().parent
    if distribution is None:
        try:
            distribution = metadata.distribution(DISTRIBUTION)
        except metadata.PackageNotFoundError:
            return KernelInstall(__version__, package_dir, None, None, None, None)
    version = distribution.version
    return KernelInstall(
        version=__version__,
        package_dir=package_dir,
        distribution_version=version,
        distribution_dir=_distribution_dir(distribution),
        editable_from=_editable_source(distribution),
        foreign=_why_foreign(distribution, __version__),
    )


def _why_foreign(distribution: metadata.Distribution, kernel_version: str) -> str | None:
    scripts = {ep.name: ep.value for ep in distribution.entry_points if ep.group == "console_scripts"}
    command = scripts.get("himl")
    if command != CONSOLE_SCRIPT:
        declares = f"its `himl` command runs {command}" if command else "it declares no `himl` command"
        return (
            f"the installed distribution {DISTRIBUTION!r} {distribution.version} is another project "
            f"({declares}, not {CONSOLE_SCRIPT})"
        )
    if distribution.version != kernel_version:
        return (
            f"the installed distribution {DISTRIBUTION!r} says version {distribution.version} but the kernel "
            f"imported is {kernel_version} (a stale install, or a second copy on sys.path)"
        )
    return None


def _distribution_dir(distribution: metadata.Distribution) -> Path | None:
    located = distribution.locate_file("")
    return Path(str(located)) if str(located) else None


def _editable_source(distribution: metadata.Distribution) -> Path | None:
    """The source folder of an editable install, read from PEP 610's ``direct_url.json``."""
    text = distribution.read_text("direct_url.json")
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or not (record.get("dir_info") or {}).get("editable"):
        return None
    url = str(record.get("url", ""))
    return Path(unquote(urlsplit(url).path)) if url.startswith("file:") else None


def check_kernel_distribution(report: DoctorReport, install: KernelInstall | None = None) -> None:
    """``himl doctor``'s ``himl`` row: the kernel's version and distribution; a problem when ``himl`` is not ours."""
    install = inspect_kernel() if install is None else install
    detail = f"{install.version} ({install.where()})"
    if install.foreign is not None:
        report.problem("himl", detail, f"pip uninstall {DISTRIBUTION}, then install this kernel {HOW_TO_INSTALL}")
    elif install.distribution_version is None:
        report.missing("himl", detail, f"install it, so that plugins find it: {HOW_TO_INSTALL}")
    else:
        report.ok("himl", detail)
