"""One interface over whole-slide image readers.

:func:`open_slide` tries the reader backends in order (OpenSlide first, then
cuCIM when it is importable, then a tifffile reader for plain pyramidal TIFFs)
and returns the first :class:`SlideReader` that opens the file. When none can,
it raises :class:`SlideOpenError`, one line naming the file and what each
backend said.

Coordinates are level-0 ``(x, y)`` pixels everywhere: ``read_region`` takes
the top-left corner in level-0 pixels and a size in pixels of the level read,
as OpenSlide does. Images are ``(height, width, 3)`` uint8 RGB numpy arrays;
pixels outside the slide are white.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from himl_kernel.errors import HimlError, UnknownNameError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    RGBArray = npt.NDArray[np.uint8]

#: Reader backends by name: "module:class". The class takes the file's path and
#: raises any exception when it cannot read it.
BACKENDS: dict[str, str] = {
    "openslide": "himl_cpath.readers.openslide_reader:OpenSlideReader",
    "cucim": "himl_cpath.readers.cucim_reader:CuCIMReader",
    "tifffile": "himl_cpath.readers.tifffile_reader:TifffileReader",
}
DEFAULT_ORDER: tuple[str, ...] = ("openslide", "cucim", "tifffile")


class SlideOpenError(HimlError):
    """No reader backend could open a slide; the message says what each one said."""

    def __init__(self, path: Path, reasons: Sequence[tuple[str, str]]) -> None:
        self.path = Path(path)
        self.reasons = list(reasons)
        said = "; ".join(f"{name}: {reason}" for name, reason in reasons)
        super().__init__(f"cannot open slide {path}: {said}")

    def __reduce__(self) -> tuple[type[SlideOpenError], tuple[Path, list[tuple[str, str]]]]:
        # worker processes send it back to the parent by pickling
        return type(self), (self.path, self.reasons)


@dataclass(frozen=True)
class SlideInfo:
    """What a reader knows about a slide, without pixels."""

    path: Path
    backend: str
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    mpp: tuple[float, float] | None
    objective_power: float | None

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.level_dimensions[0]


class SlideReader(abc.ABC):
    """An open slide. Use as a context manager, or call :meth:`close`."""

    backend: str = ""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # -- what each backend provides ----------------------------------------
    @property
    @abc.abstractmethod
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        """(width, height) of each level, level 0 first."""

    @property
    @abc.abstractmethod
    def level_downsamples(self) -> tuple[float, ...]:
        """How many level-0 pixels one pixel of each level spans."""

    @property
    def mpp(self) -> tuple[float, float] | None:
        """Microns per level-0 pixel (x, y), when the file says."""
        return None

    @property
    def objective_power(self) -> float | None:
        """The scanner's objective magnification (20, 40...), when the file says."""
        return None

    @abc.abstractmethod
    def _read(self, x: int, y: int, level: int, width: int, height: int) -> RGBArray:
        """Pixels of a rectangle at level-0 (x, y); parts outside the slide are white."""

    def close(self) -> None:  # noqa: B027 - optional for backends
        """Release the file."""

    # -- shared behaviour ----------------------------------------------------
    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.level_dimensions[0]

    def info(self) -> SlideInfo:
        return SlideInfo(
            path=self.path,
            backend=self.backend,
            level_dimensions=self.level_dimensions,
            level_downsamples=self.level_downsamples,
            mpp=self.mpp,
            objective_power=self.objective_power,
        )

    def check_level(self, level: int) -> int:
        """``level``, with negative numbers counted from the lowest resolution (-1 is the last)."""
        count = self.level_count
        chosen = level + count if level < 0 else level
        if not 0 <= chosen < count:
            raise HimlError(f"slide {self.path} has levels 0..{count - 1}; level {level} does not exist")
        return chosen

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> RGBArray:
        """The (height, width, 3) RGB pixels at level-0 ``location``, ``size`` pixels of ``level``."""
        import numpy as np

        level = self.check_level(level)
        x, y = int(location[0]), int(location[1])
        width, height = int(size[0]), int(size[1])
        if width <= 0 or height <= 0:
            raise ValueError(f"region size must be positive, got {size}")
        return np.ascontiguousarray(self._read(x, y, level, width, height))

    def read_level(self, level: int) -> RGBArray:
        """All of one level."""
        level = self.check_level(level)
        width, height = self.level_dimensions[level]
        return self.read_region((0, 0), level, (width, height))

    def best_level_for_downsample(self, downsample: float) -> int:
        """The highest-resolution level whose downsample is at most ``downsample`` (as OpenSlide picks)."""
        best = 0
        for index, value in enumerate(self.level_downsamples):
            if value <= downsample + 1e-6:
                best = index
        return best

    def thumbnail(self, max_size: tuple[int, int] = (512, 512)) -> RGBArray:
        """The whole slide scaled to fit ``max_size`` (width, height), aspect ratio kept."""
        import numpy as np
        from PIL import Image

        width, height = self.dimensions
        scale = max(width / max_size[0], height / max_size[1], 1.0)
        level = self.best_level_for_downsample(scale)
        pixels = self.read_level(level)
        target = (max(1, round(width / scale)), max(1, round(height / scale)))
        if (pixels.shape[1], pixels.shape[0]) == target:
            return pixels
        image = Image.fromarray(pixels).resize(target, Image.Resampling.BOX)
        return np.asarray(image)

    def __enter__(self) -> SlideReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} levels={self.level_dimensions}>"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def backend_order(backend: str | Sequence[str] | None) -> list[str]:
    """The backends to try: ``None``/``"auto"`` for the default order, a name, or a list of names."""
    if backend is None or backend == "auto":
        return list(DEFAULT_ORDER)
    names = [backend] if isinstance(backend, str) else list(backend)
    names = [part.strip() for name in names for part in name.split(",") if part.strip()]
    for name in names:
        if name not in BACKENDS and ":" not in name:
            raise UnknownNameError("slide reader backend", name, BACKENDS, hint="or give a reader as module:Class")
        if name not in BACKENDS:  # a user's module:Class is checked before anything is read
            try:
                reader_class(name)
            except ImportError as exc:
                raise HimlError(f"slide reader {name!r}: cannot import its module ({_one_line(exc)})") from None
    return names


def reader_class(spec: str) -> type[SlideReader]:
    """The :class:`SlideReader` subclass that ``spec`` ("module:Class") names; anything else is refused in one line.

    Only a class that implements the reader interface is accepted, so that a
    function such as ``os:system`` is never called with a slide's path.

    Raises:
        ImportError: the module cannot be imported (a backend that is not installed).
        HimlError: ``spec`` is not of the form module:Class, or names something other than a reader class.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute.isidentifier():
        raise HimlError(f"slide reader {spec!r} should be module:Class, e.g. mypackage.readers:MyReader")
    module = importlib.import_module(module_name)
    found = getattr(module, attribute, None)
    if not (isinstance(found, type) and issubclass(found, SlideReader)):
        what = "does not exist" if found is None else f"is a {type(found).__name__}, not a SlideReader subclass"
        raise HimlError(f"slide reader {spec!r} {what}; give a class derived from himl_cpath.slide.SlideReader")
    return found


def open_slide(path: str | Path, backend: str | Sequence[str] | None = None) -> SlideReader:
    """Open ``path`` with the first backend that can read it.

    Args:
        path: the slide file.
        backend: ``None`` or ``"auto"`` (OpenSlide, cuCIM, tifffile), one
            backend name, a comma-separated list, or a sequence of names; a
            name may also be the import path of a :class:`SlideReader`
            subclass (``"mypackage.readers:MyReader"``).

    Raises:
        SlideOpenError: no backend opened the file; the message has each backend's reason.
        UnknownNameError: a backend name that does not exist.
    """
    path = Path(path)
    names = backend_order(backend)
    if not path.is_file():
        raise SlideOpenError(path, [("all", "no such file")])
    reasons: list[tuple[str, str]] = []
    for name in names:
        try:
            cls = reader_class(BACKENDS.get(name, name))
        except ImportError as exc:
            reasons.append((name, f"not installed ({_one_line(exc)})"))
            continue
        try:
            reader = cls(path)
        except ImportError as exc:
            reasons.append((name, f"not installed ({_one_line(exc)})"))
            continue
        except Exception as exc:  # a backend's refusal, in its own words
            reasons.append((name, _one_line(exc)))
            continue
        return reader
    raise SlideOpenError(path, reasons)
