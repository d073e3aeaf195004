"""The report that ``himl doctor`` fills and prints.

Each check adds one row: a topic (``python``, ``plugin cpath``, ``torch``...),
a status and, where something is wrong or absent, the command that fixes it.
Plugins receive the same object through the ``himl_doctor`` hook::

    @hookimpl
    def himl_doctor(report):
        if importlib.util.find_spec("azure.ai.ml") is None:
            report.missing("azure-ai-ml", "not installed", "pip install 'himl[azure]'")
        else:
            report.ok("azure-ai-ml", "installed")

The three statuses:

- ``ok``: present and usable;
- ``missing``: an optional piece that is absent; some commands will not work,
  but nothing is broken, so the exit code stays 0;
- ``problem``: something that is broken or misconfigured; ``himl doctor``
  exits with 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

DoctorStatus = Literal["ok", "missing", "problem"]


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
