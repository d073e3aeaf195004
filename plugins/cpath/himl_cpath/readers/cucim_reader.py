"""The cuCIM backend (RAPIDS cuCIM), used where the ``cucim`` package is importable."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from himl_cpath.slide import SlideReader

# cuCIM ships no type hints (and may be absent where mypy runs): loaded by name, typed Any
CuImage: Any = importlib.import_module("cucim").CuImage

if TYPE_CHECKING:
    from himl_cpath.slide import RGBArray


class CuCIMReader(SlideReader):
    """Aperio SVS and generic tiled TIFFs through cuCIM's reader."""

    backend = "cucim"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.image: Any = CuImage(str(path))
        self._resolutions: dict[str, Any] = dict(self.image.resolutions)
        # cuCIM opens TIFFs whose tiles it cannot decode (WebP, say) and fails only on reading:
        # read one pixel now, so that such a file is refused here and goes to the next backend
        self.image.read_region(location=(0, 0), size=(1, 1), level=len(self._resolutions["level_dimensions"]) - 1)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((int(w), int(h)) for w, h in self._resolutions["level_dimensions"])

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return tuple(float(d) for d in self._resolutions["level_downsamples"])

    def _aperio(self, key: str) -> float | None:
        metadata = getattr(self.image, "metadata", {})
        try:
            return float(metadata["aperio"][key])
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def mpp(self) -> tuple[float, float] | None:
        aperio = self._aperio("MPP")
        if aperio is not None:
            return aperio, aperio
        try:
            spacing, units = self.image.spacing(), self.image.spacing_units()
        except Exception:
            return None
        if len(spacing) < 2 or not units or units[0] not in ("micrometer", "um", "µm"):
            return None
        return float(spacing[1]), float(spacing[0])  # cuCIM orders spacing (y, x)

    @property
    def objective_power(self) -> float | None:
        return self._aperio("AppMag")

    def _read(self, x: int, y: int, level: int, width: int, height: int) -> RGBArray:
        region = np.array(self.image.read_region(location=(x, y), size=(width, height), level=level))[..., :3]
        # cuCIM fills what lies beyond the slide with black; the reader interface promises white
        level_width, level_height = self.level_dimensions[level]
        downsample = self.level_downsamples[level]
        inside_x = max(0, min(width, round(level_width - x / downsample)))
        inside_y = max(0, min(height, round(level_height - y / downsample)))
        region[inside_y:, :] = 255
        region[:, inside_x:] = 255
        return np.ascontiguousarray(region)

    def close(self) -> None:
        close = getattr(self.image, "close", None)
        if close is not None:
            close()
