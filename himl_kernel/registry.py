"""Registries handed to the ``himl_register_*`` hooks.

A plugin registers a *descriptor*: a name, a one-line description and either
the object itself or an import path ``"package.module:attribute"``. The import
path is the usual choice: the object (and whatever heavy library its module
imports) is loaded only when a command asks for that name, so ``himl plugins``
and ``himl models`` stay fast however many plugins are installed.

Names are unique within a registry. Looking up an unknown name raises
:class:`~himl_kernel.errors.UnknownNameError`, which lists the known names
and the closest matches.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from himl_kernel.errors import HimlError, UnknownNameError

T = TypeVar("T")


def import_object(path: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the attribute."""
    module_name, sep, attr_path = path.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"import path {path!r} must look like 'package.module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class Entry(Generic[T]):
    """One registered item: its name, where it came from, and how to load it."""

    name: str
    target: T | str
    description: str = ""
    plugin: str = ""
    priority: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    kind: str = "entry"
    _loaded: Any = field(default=None, init=False, repr=False)

    @property
    def is_lazy(self) -> bool:
        return isinstance(self.target, str)

    def load(self) -> T:
        """The registered object, importing it on first use."""
        if self._loaded is None:
            self._check_requirements()
            if isinstance(self.target, str):
                try:
                    self._loaded = import_object(self.target)
                except HimlError:
                    raise
                except Exception as exc:  # the plugin's code, not ours: name it
                    raise HimlError(
                        f"{self.name!r} from plugin {self.plugin or '?'} could not be loaded from "
                        f"{self.target}: {type(exc).__name__}: {exc}"
                    ) from exc
            else:
                self._loaded = self.target
        return self._loaded  # type: ignore[no-any-return]

    def _check_requirements(self) -> None:
        """Fail in one line when a module the entry's ``requires`` option names is not installed."""
        required = self.options.get("requires", ())
        for module in [required] if isinstance(required, str) else required:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                extra = self.options.get("extra", module)
                raise HimlError(f"{self.kind} {self.name!r} needs {module}: pip install 'himl[{extra}]'")


class Registry(Generic[T]):
    """Named items of one kind (compute backends, containers, ...)."""

    def __init__(self, kind: str, hint_for_unknown: str = "") -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._current_plugin = ""
        self._hint = hint_for_unknown
        self._notes: list[str] = []

    # -- used by plugins -------------------------------------------------
    def add(
        self,
        name: str,
        target: T | str,
        description: str = "",
        *,
        priority: int = 0,
        **options: Any,
    ) -> Entry[T]:
        """Register ``target`` (an object, or an ``"module:attr"`` path) as ``name``.

        ``priority`` orders entries where order matters (checkpoint sources,
        dataset providers): higher is tried first. ``options`` are free-form
        facts about the entry that the kernel or other plugins may read;
        ``requires=("lightning",)`` names modules the entry needs, so that
        loading it without them fails with a one-line install hint
        (``extra="name"`` names the himl extra; default: the module's name).
        """
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            other = self._entries[name].plugin
            raise HimlError(
                f"{self.kind} {name!r} is registered twice: by plugin {other or '?'} "
                f"and by plugin {self._current_plugin or '?'}"
            )
        entry: Entry[T] = Entry(
            name=name,
            target=target,
            description=description,
            plugin=self._current_plugin,
            priority=priority,
            options=dict(options),
            kind=self.kind,
        )
        self._entries[name] = entry
        return entry

    # -- used by the kernel ----------------------------------------------
    def set_current_plugin(self, plugin_name: str) -> None:
        self._current_plugin = plugin_name

    def remove_plugin(self, plugin_name: str) -> None:
        """Forget every entry a plugin registered (it turned out to be broken)."""
        for name in [n for n, e in self._entries.items() if e.plugin == plugin_name]:
            del self._entries[name]

    def add_note(self, note: str) -> None:
        """A line appended to unknown-name errors (e.g. a broken plugin)."""
        self._notes.append(note)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def by_priority(self) -> list[Entry[T]]:
        """Entries, highest priority first, then by name."""
        return sorted(self._entries.values(), key=lambda e: (-e.priority, e.name))

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            hint = "; ".join([self._hint, *self._notes]) if self._notes else self._hint
            raise UnknownNameError(self.kind, name, self._entries, hint=hint.strip("; ")) from None

    def get(self, name: str) -> T:
        """The object registered as ``name``, loaded on first use."""
        return self.entry(name).load()
