"""The OpenSlide backend (openslide-python with the openslide-bin library)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import openslide

from himl_cpath.slide import SlideReader

if TYPE_CHECKING:
    from himl_cpath.slide import RGBArray


def rgba_to_rgb(rgba: RGBArray) -> RGBArray:
    """RGB from OpenSlide's premultiplied RGBA: transparent (outside the slide) becomes white."""
    alpha = rgba[..., 3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgba[..., :3])
    # premultiplied: composite over white is rgb + (255 - alpha)
    wide = rgba[..., :3].astype(np.uint16) + (255 - alpha)[..., None].astype(np.uint16)
    return np.minimum(wide, 255).astype(np.uint8)


class OpenSlideReader(SlideReader):
    """Every format OpenSlide reads: Aperio SVS, Hamamatsu, Leica, MIRAX, generic tiled TIFF..."""

    backend = "openslide"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.slide = openslide.OpenSlide(str(path))

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((int(w), int(h)) for w, h in self.slide.level_dimensions)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return tuple(float(d) for d in self.slide.level_downsamples)

    @property
    def mpp(self) -> tuple[float, float] | None:
        props = self.slide.properties
        try:
            return float(props[openslide.PROPERTY_NAME_MPP_X]), float(props[openslide.PROPERTY_NAME_MPP_Y])
        except (KeyError, ValueError):
            return None

    @property
    def objective_power(self) -> float | None:
        try:
            return float(self.slide.properties[openslide.PROPERTY_NAME_OBJECTIVE_POWER])
        except (KeyError, ValueError):
            return None

    def _read(self, x: int, y: int, level: int, width: int, height: int) -> RGBArray:
        region = self.slide.read_region((x, y), level, (width, height))
        return rgba_to_rgb(np.asarray(region))

    def close(self) -> None:
        self.slide.close()
