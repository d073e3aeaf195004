"""Registries handed to the ``himl_register_*`` hooks.

A plugin registers a *descriptor*: a name, a one-line description and either
the object itself or an import path ``"package.module:attribute"``. The import
path is the usual choice: the object (and whatever heavy library its module
imports) is loaded only when a command asks for that name, so ``himl plugins``
and ``himl models`` stay fast however many plugins are installed.

Names are unique within a registry. When a second plugin registers a name that
is taken, only that entry is rejected: it is kept aside (``rejected``), one
warning names both plugins and distributions, and ``DIST:NAME`` or
``PLUGIN:NAME`` still picks it explicitly. Which plugin is asked first, and so
keeps a name, is the precedence rule of :mod:`himl_kernel.hookspecs`.

Looking up an unknown name raises :class:`~himl_kernel.errors.UnknownNameError`,
which lists the known names and the closest matches.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from himl_kernel.errors import HimlError, UnknownNameError

T = TypeVar("T")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def import_object(path: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the attribute."""
    module_name, sep, attr_path = path.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"import path {path!r} must look like 'package.module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def is_dotted_path(text: str) -> bool:
    """Whether ``text`` is ``pkg.module.Name``: two or more identifiers joined by dots."""
    parts = text.split(".")
    return len(parts) >= 2 and all(_IDENTIFIER.match(part) for part in parts)


def same_distribution(a: str, b: str) -> bool:
    """Distribution names compare as the packaging standard says (case, ``-``, ``_``, ``.`` alike)."""
    return bool(a) and re.sub(r"[-_.]+", "-", a).lower() == re.sub(r"[-_.]+", "-", b).lower()


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
    distribution: str = ""
    check: Callable[[str, Any], None] | None = field(default=None, repr=False)
    _loaded: Any = field(default=None, init=False, repr=False)

    @property
    def is_lazy(self) -> bool:
        return isinstance(self.target, str)

    @property
    def owner(self) -> str:
        """``plugin NAME (DIST)``, as messages name where an entry came from."""
        where = f" ({self.distribution})" if self.distribution else ""
        return f"plugin {self.plugin or '?'}{where}"

    @property
    def qualifier(self) -> str:
        """What goes before ``:NAME`` to pick this entry: its distribution, else its plugin."""
        dist = self.distribution
        return dist if dist and dist != "?" and " " not in dist else (self.plugin or "?")

    def load(self) -> T:
        """The registered object, importing it on first use."""
        if self._loaded is None:
            self._check_requirements()
            if isinstance(self.target, str):
                try:
                    loaded = import_object(self.target)
                except (HimlError, KeyboardInterrupt):
                    raise
                except BaseException as exc:  # the plugin's code, not ours (sys.exit included): name it
                    raise HimlError(
                        f"{self.name!r} from plugin {self.plugin or '?'} could not be loaded from "
                        f"{self.target}: {type(exc).__name__}: {exc}"
                    ) from exc
            else:
                loaded = self.target
            if self.check is not None:
                self.check(self.name, loaded)
            self._loaded = loaded
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
    """Named items of one kind (compute backends, containers, ...).

    Args:
        kind: what the items are, in words (``model``, ``compute backend``).
        hint_for_unknown: appended to the error for an unknown name.
        check: called with ``(name, object)`` when an entry made from a
            dotted path is first loaded, before anything uses the object;
            raise :class:`~himl_kernel.errors.HimlError` to refuse it.
        dotted_paths: a name ``pkg.module.Name`` that is not registered is
            imported from that module (``--model health_cpath.DeepMIL``);
            ``check`` still applies.
    """

    def __init__(
        self,
        kind: str,
        hint_for_unknown: str = "",
        *,
        check: Callable[[str, Any], None] | None = None,
        dotted_paths: bool = False,
    ) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._rejected: list[Entry[T]] = []
        self._clashes: list[str] = []
        self._current_plugin = ""
        self._current_distribution = ""
        self._hint = hint_for_unknown
        self._notes: list[str] = []
        self._check = check
        self._dotted_paths = dotted_paths
        self._by_path: dict[str, Entry[T]] = {}

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

        A name that another plugin registered first is not replaced: the new
        entry is returned but set aside as rejected (see :attr:`rejected`), and
        :meth:`take_clashes` hands the kernel the warning that says so.
        """
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if ":" in name:
            raise ValueError(f"{self.kind} name {name!r} may not contain ':' (it separates DIST:NAME)")
        entry: Entry[T] = Entry(
            name=name,
            target=target,
            description=description,
            plugin=self._current_plugin,
            priority=priority,
            options=dict(options),
            kind=self.kind,
            distribution=self._current_distribution,
        )
        held = self._entries.get(name)
        if held is not None:
            self._rejected.append(entry)
            self._clashes.append(
                f"{self.kind} {name!r} of {entry.owner} is not registered: {held.owner} registered it first; "
                f"pick one with {entry.qualifier}:{name}"
            )
            return entry
        self._entries[name] = entry
        return entry

    # -- used by the kernel ----------------------------------------------
    def set_current_plugin(self, plugin_name: str, distribution: str = "") -> None:
        self._current_plugin = plugin_name
        self._current_distribution = distribution

    def remove_plugin(self, plugin_name: str) -> None:
        """Forget every entry a plugin registered (it turned out to be broken).

        A name it held goes to the next plugin that registered it, in precedence order.
        """
        self._rejected = [e for e in self._rejected if e.plugin != plugin_name]
        for name in [n for n, e in self._entries.items() if e.plugin == plugin_name]:
            del self._entries[name]
            heir = next((e for e in self._rejected if e.name == name), None)
            if heir is not None:
                self._rejected.remove(heir)
                self._entries[name] = heir

    def take_clashes(self) -> list[str]:
        """The warnings about rejected duplicates since the last call (each said once)."""
        clashes, self._clashes = self._clashes, []
        return clashes

    @property
    def rejected(self) -> list[Entry[T]]:
        """Entries whose name another plugin held first; ``DIST:NAME`` still finds them."""
        return list(self._rejected)

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
        """The entry for ``name``, ``DIST:NAME`` / ``PLUGIN:NAME``, or (if enabled) ``pkg.module.Name``."""
        found = self._entries.get(name)
        if found is not None:
            return found
        if ":" in name:
            return self._qualified(name)
        if self._dotted_paths and is_dotted_path(name):
            return self._dotted(name)
        raise self._unknown(name)

    def get(self, name: str) -> T:
        """The object registered as ``name``, loaded on first use."""
        return self.entry(name).load()

    def _unknown(self, name: str) -> UnknownNameError:
        hint = "; ".join([self._hint, *self._notes]) if self._notes else self._hint
        return UnknownNameError(self.kind, name, self._entries, hint=hint.strip("; "))

    def _qualified(self, text: str) -> Entry[T]:
        owner, _, name = text.partition(":")
        if not owner or not name:
            raise HimlError(f"{self.kind} {text!r}: expected DIST:NAME or PLUGIN:NAME, e.g. himl:HelloWorld")
        candidates = [*self._entries.values(), *self._rejected]
        matches = [
            e for e in candidates if e.name == name and (e.plugin == owner or same_distribution(e.distribution, owner))
        ]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            owners = ", ".join(e.plugin for e in matches)
            raise HimlError(
                f"{self.kind} {text!r} is ambiguous: plugins {owners} of {owner} register it; use PLUGIN:NAME"
            )
        offered = sorted({f"{e.qualifier}:{e.name}" for e in candidates if e.name == name})
        if not offered:
            raise self._unknown(text)  # the whole DIST:NAME, so `os:system` is not reported as 'system'
        raise HimlError(
            f"no plugin or distribution {owner!r} registers {self.kind} {name!r}; known: {', '.join(offered)}"
        )

    def _dotted(self, path: str) -> Entry[T]:
        held = self._by_path.get(path)
        if held is not None:
            return held
        module_name, _, attr = path.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise HimlError(
                f"{self.kind} {path!r} is neither registered nor importable: module {module_name!r} raised "
                f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            ) from exc
        if not hasattr(module, attr):
            raise HimlError(f"{self.kind} {path!r}: module {module_name!r} has no attribute {attr!r}")
        entry: Entry[T] = Entry(
            name=path,
            target=f"{module_name}:{attr}",
            description=f"imported from {module_name}",
            plugin="",
            kind=self.kind,
            distribution="dotted path",
            check=self._check,
        )
        self._by_path[path] = entry
        return entry


@dataclass(frozen=True)
class RegistryDeclaration:
    """A named registry one plugin offers the others (``himl_register_registries``).

    Attributes:
        name: how other plugins ask for it (``image_encoders``).
        kind: what its entries are, in words (``image encoder``), for messages.
        description: one line for ``himl plugins --verbose``.
        plugin: the plugin that declared it.
        distribution: that plugin's distribution.
    """

    name: str
    kind: str = ""
    description: str = ""
    plugin: str = ""
    distribution: str = ""


class RegistryCatalog:
    """What ``himl_register_registries`` receives: declare the named registries your plugin offers."""

    def __init__(self) -> None:
        self._declared: dict[str, RegistryDeclaration] = {}
        self._current_plugin = ""
        self._current_distribution = ""
        self._clashes: list[str] = []

    def declare(self, name: str, kind: str = "", description: str = "") -> RegistryDeclaration:
        """Offer a registry called ``name``; every plugin may fill it in ``himl_register_entries``.

        Args:
            name: a name unique among all plugins; prefix it with your topic.
            kind: what an entry is, in words (``image encoder``); default: ``name``.
            description: one line saying what the entries are for.

        Returns:
            The declaration. A name that another plugin declared first stays
            theirs: yours is ignored, with one warning naming both.
        """
        if not name or not isinstance(name, str) or ":" in name:
            raise ValueError(f"a named registry needs a non-empty name without ':', got {name!r}")
        declaration = RegistryDeclaration(
            name, kind or name, description, self._current_plugin, self._current_distribution
        )
        held = self._declared.get(name)
        if held is not None:
            self._clashes.append(
                f"named registry {name!r} of plugin {declaration.plugin} ({declaration.distribution}) is ignored: "
                f"plugin {held.plugin} ({held.distribution}) declared it first"
            )
            return declaration
        self._declared[name] = declaration
        return declaration

    # -- used by the kernel ----------------------------------------------
    def set_current_plugin(self, plugin_name: str, distribution: str = "") -> None:
        self._current_plugin = plugin_name
        self._current_distribution = distribution

    def remove_plugin(self, plugin_name: str) -> None:
        self._declared = {k: d for k, d in self._declared.items() if d.plugin != plugin_name}

    def take_clashes(self) -> list[str]:
        clashes, self._clashes = self._clashes, []
        return clashes

    def __iter__(self) -> Iterator[RegistryDeclaration]:
        return iter(self._declared.values())
