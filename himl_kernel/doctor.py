"""The report that ``himl doctor`` fills and prints.

Each check adds one row: a topic (``python``, ``plugin cpath``, ``torch``...),
a status and, where something is wrong or absent, the command that fixes it.
Plugins receive the same object through the ``himl_doctor`` hook, and report
what they need themselves (the kernel names no plugin's packages)::

    @hookimpl
    def himl_doctor(report):
        report.requirements_of("himl-foo", label="foo")  # every requirement its metadata declares
        if not Path("~/.foo/config").expanduser().exists():
            report.missing("foo config", "no ~/.foo/config", "foo login")

:meth:`DoctorReport.requirements_of` reads the requirement strings of an
installed distribution's metadata, parses them with ``packaging`` (names,
version ranges, extras, environment markers) and adds a row per requirement
that applies here: needed ones that are absent or of a version outside the
range are problems, absent optional ones (of the distribution's extras) are
``missing``. Nothing is imported to find out.

The three statuses:

- ``ok``: present and usable;
- ``missing``: an optional piece that is absent; some commands will not work,
  but nothing is broken, so the exit code stays 0;
- ``problem``: something that is broken or misconfigured; ``himl doctor``
  exits with 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from packaging.requirements import Requirement

DoctorStatus = Literal["ok", "missing", "problem"]

#: Extras that are not features a user installs for: their packages are not reported.
NOT_FEATURES = frozenset({"all", "dev", "docs", "test", "tests"})


@dataclass(frozen=True)
class DoctorRow:
    """One finding of ``himl doctor``."""

    topic: str
    status: DoctorStatus
    detail: str
    fix: str = ""


@dataclass
class DoctorReport:
    """The findings of ``himl doctor``, in the order they were added."""

    rows: list[DoctorRow] = field(default_factory=list)

    def ok(self, topic: str, detail: str = "") -> None:
        """Record that ``topic`` is present and works."""
        self.rows.append(DoctorRow(topic, "ok", _one_line(detail)))

    def missing(self, topic: str, detail: str, fix: str = "") -> None:
        """Record an optional ``topic`` that is absent, and how to add it."""
        self.rows.append(DoctorRow(topic, "missing", _one_line(detail), _one_line(fix)))

    def problem(self, topic: str, detail: str, fix: str = "") -> None:
        """Record that ``topic`` is broken or misconfigured, and how to repair it."""
        self.rows.append(DoctorRow(topic, "problem", _one_line(detail), _one_line(fix)))

    def requirements_of(
        self, distribution: str, *, label: str = "", optional_extras: Iterable[str] | None = None
    ) -> bool:
        """A row per requirement of the installed ``distribution``; False (and no rows) when it is not installed.

        ``label`` prefixes each topic (``foo: requests``); ``optional_extras`` are
        the extras whose packages are reported as optional (default: every
        extra the distribution declares, except :data:`NOT_FEATURES`).
        """
        return check_requirements(self, distribution, label=label, optional_extras=optional_extras)

    @property
    def problems(self) -> list[DoctorRow]:
        return [row for row in self.rows if row.status == "problem"]

    @property
    def exit_code(self) -> int:
        """1 when any row is a problem; absent optional pieces do not count."""
        return 1 if self.problems else 0

    def to_dicts(self) -> list[dict[str, str]]:
        return [asdict(row) for row in self.rows]

    def render(self) -> str:
        """The report as aligned text: status, topic, detail, and a fix line under each row that has one."""
        if not self.rows:
            return "(nothing was checked)"
        status_width = max(len(row.status) for row in self.rows)
        topic_width = max(len(row.topic) for row in self.rows)
        indent = " " * (status_width + topic_width + 4)
        lines: list[str] = []
        for row in self.rows:
            lines.append(f"{row.status:<{status_width}}  {row.topic:<{topic_width}}  {row.detail}".rstrip())
            if row.fix and row.status != "ok":
                lines.append(f"{indent}fix: {row.fix}")
        counts = {status: 0 for status in ("ok", "missing", "problem")}
        for row in self.rows:
            counts[row.status] += 1
        summary = f"{counts['ok']} ok, {counts['missing']} missing (optional), {counts['problem']} problem(s)"
        lines.append("")
        lines.append(summary)
        return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# -- requirements from distribution metadata ----------------------------------------------


def check_requirements(
    report: DoctorReport, distribution: str, *, label: str = "", optional_extras: Iterable[str] | None = None
) -> bool:
    """What :meth:`DoctorReport.requirements_of` does."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    if optional_extras is None:
        optional_extras = [e for e in dist.metadata.get_all("Provides-Extra") or [] if e not in NOT_FEATURES]
    extras = list(optional_extras)
    own = canonicalize_name(distribution)
    seen: set[str] = set()
    for line in dist.requires or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            report.problem(_topic(label, distribution), f"its metadata has a requirement packaging cannot read: {exc}")
            continue
        needed_for = _needed_for(requirement, extras)
        name = canonicalize_name(requirement.name)
        if needed_for is None or name == own or name in seen:
            continue
        seen.add(name)
        _check_one(report, label, distribution, requirement, needed_for)
        if not needed_for and requirement.extras:  # himl[lightning]: what that extra brings is needed too
            _check_extras_of(report, label, distribution, requirement, seen)
    return True


def _needed_for(requirement: Requirement, extras: list[str]) -> str | None:
    """``""`` when always needed here, the extra's name when optional, None when it does not apply here."""
    if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
        return ""
    return next((extra for extra in extras if requirement.marker.evaluate({"extra": extra})), None)


def _check_extras_of(
    report: DoctorReport, label: str, distribution: str, requirement: Requirement, seen: set[str]
) -> None:
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        lines = metadata.requires(requirement.name) or []
    except metadata.PackageNotFoundError:
        return  # the requirement itself was reported missing
    for line in lines:
        try:
            inner = Requirement(line)
        except InvalidRequirement:
            continue  # that distribution's own check reports it
        if inner.marker is None or not any(inner.marker.evaluate({"extra": e}) for e in requirement.extras):
            continue
        name = canonicalize_name(inner.name)
        if name not in seen:
            seen.add(name)
            _check_one(report, label, distribution, inner, "")


def _check_one(report: DoctorReport, label: str, distribution: str, requirement: Requirement, needed_for: str) -> None:
    from importlib import metadata

    topic = _topic(label, requirement.name)
    wanted = str(requirement.specifier) or "any version"
    bare = f"{requirement.name}{requirement.specifier}"
    try:
        installed = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        if needed_for:
            report.missing(
                topic,
                f"not installed (optional: {distribution}[{needed_for}])",
                f"pip install '{distribution}[{needed_for}]'",
            )
        else:
            report.problem(topic, f"not installed; {distribution} needs {bare}", f"pip install '{bare}'")
        return
    if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
        report.problem(topic, f"{installed} is installed; {distribution} needs {wanted}", f"pip install '{bare}'")
    else:
        report.ok(topic, f"{installed} ({distribution} needs {wanted})")


def _topic(label: str, name: str) -> str:
    return f"{label}: {name}" if label else name
