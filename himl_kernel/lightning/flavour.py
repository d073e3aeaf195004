"""Which Lightning a model is written against: ``lightning.pytorch`` or ``pytorch_lightning``.

Lightning ships under two package names with the same code: ``lightning``
(imported as ``lightning.pytorch``) and ``pytorch_lightning``, the name hi-ml's
models and most older code use. Their classes are distinct: a Trainer of one
refuses a LightningModule of the other (``TypeError: `model` must be a
`LightningModule```). So the runner trains each model with the Trainer,
checkpoint callback and profilers of the package its LightningModule comes
from, and hands that Trainer the runner's own callbacks and logger adapted to
the package (:meth:`Flavour.adapt`).

A data module or callback of the other package than the model's cannot join
that Trainer; :func:`check_same_flavour` says so in one line, naming both.
"""

from __future__ import annotations

import functools
import importlib
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar, cast

from himl_kernel.errors import HimlError

T = TypeVar("T")

#: The package of the ``lightning`` distribution, which the Lightning layer itself is written against.
LIGHTNING = "lightning.pytorch"
#: The package of the ``pytorch-lightning`` distribution (hi-ml's models).
PYTORCH_LIGHTNING = "pytorch_lightning"

# where each package's fabric half lives, for classes such as TorchCheckpointIO
_FABRIC = {LIGHTNING: "lightning.fabric", PYTORCH_LIGHTNING: "lightning_fabric"}
_INSTALL = {LIGHTNING: "lightning", PYTORCH_LIGHTNING: "pytorch-lightning"}


def _package_of(cls: type, kind: str) -> str | None:
    """The Lightning package whose class ``kind`` (LightningModule, Callback...) ``cls`` derives from."""
    for base in cls.__mro__:
        if base.__name__ != kind:
            continue
        for package in (LIGHTNING, PYTORCH_LIGHTNING):
            if base.__module__ == package or base.__module__.startswith(f"{package}."):
                return package
    return None


@dataclass(frozen=True)
class Flavour:
    """One of the two Lightning packages, and the runner's classes made for it."""

    package: str

    def module(self, name: str = "") -> ModuleType:
        """``package.name`` (``callbacks``, ``profilers``...), imported; a missing package is one line."""
        full = f"{self.package}.{name}" if name else self.package
        try:
            return importlib.import_module(full)
        except ImportError as exc:
            raise HimlError(
                f"the model is written against {self.package}, which is not installed: "
                f"pip install {_INSTALL[self.package]} ({exc})"
            ) from None

    def attribute(self, module: str, name: str) -> Any:
        """``name`` from ``package.module`` (``module`` empty: the package itself)."""
        return getattr(self.module(module), name)

    def adapt(self, cls: type[T]) -> type[T]:
        """``cls`` (one of the runner's callbacks, loggers or plugins, written against ``lightning.pytorch``)
        as a class this package's Trainer accepts.

        For ``pytorch_lightning`` that is a subclass of ``cls`` and of the same
        Lightning base class in ``pytorch_lightning``: the code is ``cls``'s,
        and both packages' type checks pass.
        """
        if self.package == LIGHTNING:
            return cls
        adapted: type[T] = _adapted(cast(Any, cls), self.package)
        return adapted

    def __str__(self) -> str:
        return self.package


@functools.cache
def _adapted(cls: Any, package: str) -> Any:
    counterparts: list[type] = []
    for base in cls.__mro__:
        module = base.__module__
        for ours, fabric in ((LIGHTNING, False), ("lightning.fabric", True)):
            if module == ours or module.startswith(f"{ours}."):
                target = (_FABRIC[package] if fabric else package) + module[len(ours) :]
                counterparts.append(getattr(importlib.import_module(target), base.__name__))
                break
        if counterparts:
            break
    if not counterparts:
        raise TypeError(f"{cls.__name__} derives from no lightning.pytorch class")
    return type(cls.__name__, (cls, *counterparts), {"__module__": cls.__module__, "__doc__": cls.__doc__})


class EitherPackage:
    """Mixin for the Lightning layer's public callbacks and loggers: a Trainer of either package takes them.

    A hi-ml script builds ``AzureMLProgressBar()`` or ``AzureMLLogger()`` and
    hands it to a ``pytorch_lightning`` Trainer. When the process has imported
    ``pytorch_lightning``, the instance made is of the class adapted to it
    (:meth:`Flavour.adapt`), so it is an instance of both packages' base
    classes; that Trainer recognises it (a progress bar as its progress bar,
    not beside its own), and so does a ``lightning.pytorch`` one.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        target: type = cls
        if PYTORCH_LIGHTNING in sys.modules and not any(
            base.__module__.startswith(f"{PYTORCH_LIGHTNING}.") for base in cls.__mro__
        ):
            target = _adapted(cast(Any, cls), PYTORCH_LIGHTNING)
        return object.__new__(target)


def flavour_of(model: object, what: str = "create_model()") -> Flavour:
    """The package ``model``'s LightningModule class comes from; anything else is one line."""
    package = _package_of(type(model), "LightningModule")
    if package is None:
        kind = type(model)
        raise HimlError(
            f"{what} returned a {kind.__module__}.{kind.__qualname__}, which is not a LightningModule "
            f"(of {LIGHTNING} or {PYTORCH_LIGHTNING})"
        )
    return Flavour(package)


def check_same_flavour(flavour: Flavour, value: object, kind: str, what: str) -> None:
    """Refuse ``value`` (a ``kind``: LightningDataModule, Callback...) of the other package than the model's."""
    own = getattr(flavour.module(), kind, None)
    if isinstance(own, type) and isinstance(value, own):  # this package's (perhaps of both, see EitherPackage)
        return
    package = _package_of(type(value), kind)
    if package is None or package == flavour.package:
        return
    name = type(value).__qualname__
    raise HimlError(
        f"{what} is a {package} {kind} ({name}) but the model is a {flavour.package} LightningModule: one "
        f"Trainer cannot mix the two packages; import both from the same one ({flavour.package} or {package})"
    )
