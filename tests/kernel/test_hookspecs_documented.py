"""Every hook a plugin can implement is documented: each argument, and the return value.

After datasette's ``tests/test_docs.py``: a hook added without documentation,
or an argument added to a hook without a word about it, fails here.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import pytest

from himl_kernel import hookspecs

SECTION = re.compile(r"^\s*([A-Z][A-Za-z ]*):\s*$")


def hookspec_functions() -> list[Callable[..., Any]]:
    """The functions of the hookspec module that carry pluggy's hookspec marker."""
    marker = f"{hookspecs.PROJECT}_spec"
    found = [obj for name, obj in vars(hookspecs).items() if inspect.isfunction(obj) and hasattr(obj, marker)]
    return sorted(found, key=lambda f: f.__name__)


def sections(docstring: str) -> dict[str, list[str]]:
    """Google-style sections (``Args:``, ``Returns:``...) -> their lines."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in inspect.cleandoc(docstring).splitlines():
        match = SECTION.match(line)
        if match:
            current = found.setdefault(match.group(1), [])
        elif current is not None:
            if line and not line[0].isspace():  # back to the body text
                current = None
            else:
                current.append(line)
    return found


def described_arguments(args_lines: list[str]) -> list[str]:
    """Names at the start of the ``Args:`` entries (the least indented lines)."""
    entries = [line for line in args_lines if line.strip()]
    if not entries:
        return []
    indent = min(len(line) - len(line.lstrip()) for line in entries)
    names = []
    for line in entries:
        match = re.match(r"(\w+)(?:\s*\(.*?\))?:", line[indent:])
        if match and len(line) - len(line.lstrip()) == indent:
            names.append(match.group(1))
    return names


def documentation_problems(func: Callable[..., Any]) -> list[str]:
    """What is missing from a hookspec's docstring; empty when it is complete."""
    doc = func.__doc__
    if not doc or not doc.strip():
        return ["no docstring"]
    problems = []
    found = sections(doc)
    params = list(inspect.signature(func).parameters)
    args_lines = found.get("Args")
    if params and args_lines is None:
        problems.append("no 'Args:' section")
    documented = set(described_arguments(args_lines or []))
    problems.extend(f"argument {p!r} not described under 'Args:'" for p in params if p not in documented)
    problems.extend(f"'Args:' describes {d!r}, which is not an argument" for d in sorted(documented - set(params)))
    returns = found.get("Returns")
    if returns is None or not any(line.strip() for line in returns):
        problems.append("no 'Returns:' section (say what the result means, or 'Nothing')")
    return problems


def test_the_hookspec_module_defines_hooks() -> None:
    names = [f.__name__ for f in hookspec_functions()]
    assert "himl_register_containers" in names
    assert "himl_detect_run" in names
    assert all(name.startswith("himl_") for name in names)


@pytest.mark.parametrize("hook", hookspec_functions(), ids=lambda f: f.__name__)
def test_hookspec_documents_every_argument_and_its_result(hook: Callable[..., Any]) -> None:
    assert documentation_problems(hook) == []


# --- the check itself catches what it should ---------------------------------------


def well_documented(registry: object, command: str) -> None:
    """Summary.

    Args:
        registry: the registry.
        command: which command.

    Returns:
        Nothing.
    """


def missing_an_argument(registry: object, command: str) -> None:
    """Summary.

    Args:
        registry: the registry; ``command`` is only mentioned in passing here.

    Returns:
        Nothing.
    """


def without_returns(registry: object) -> None:
    """Summary.

    Args:
        registry: the registry.
    """


def without_docstring(registry: object) -> None:
    pass


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (well_documented, []),
        (missing_an_argument, ["argument 'command' not described under 'Args:'"]),
        (without_returns, ["no 'Returns:' section (say what the result means, or 'Nothing')"]),
        (without_docstring, ["no docstring"]),
    ],
    ids=lambda v: v.__name__ if callable(v) else "",
)
def test_the_check_reports_what_a_docstring_lacks(func: Callable[..., Any], expected: list[str]) -> None:
    assert documentation_problems(func) == expected
