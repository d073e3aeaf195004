"""Tissue masks: Otsu's threshold on a low-resolution level, or a mask image the user gives.

A :class:`TissueMask` is a boolean image together with how many level-0
pixels each of its pixels spans, so that the tissue occupancy of any level-0
rectangle can be read from it (in constant time, through a summed-area table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from himl_cpath.slide import SlideReader

BoolArray = npt.NDArray[np.bool_]


def luminance(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """ITU-R 601 luma of an RGB image, as 8-bit grey."""
    weights = np.array([0.299, 0.587, 0.114])
    return np.clip(rgb[..., :3].astype(np.float32) @ weights.astype(np.float32), 0, 255).astype(np.uint8)


def otsu_threshold(grey: npt.NDArray[np.uint8]) -> int:
    """The grey level that best splits ``grey`` into two classes (Otsu, 1979).

    Pixels ``<=`` the returned level form the darker class.
    """
    counts = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return 255
    levels = np.arange(256, dtype=np.float64)
    weight_dark = np.cumsum(counts)
    weight_light = total - weight_dark
    sum_dark = np.cumsum(counts * levels)
    mean_dark = np.divide(sum_dark, weight_dark, out=np.zeros(256), where=weight_dark > 0)
    mean_light = np.divide(sum_dark[-1] - sum_dark, weight_light, out=np.zeros(256), where=weight_light > 0)
    between = weight_dark * weight_light * (mean_dark - mean_light) ** 2
    return int(np.argmax(between))


@dataclass
class TissueMask:
    """A boolean tissue image; each pixel spans ``scale`` (x, y) level-0 pixels."""

    mask: BoolArray
    scale: tuple[float, float]
    threshold: int | None = None
    _integral: npt.NDArray[np.int64] | None = field(default=None, repr=False)

    @property
    def fraction(self) -> float:
        """The share of the slide that is tissue."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    def occupancy(self, x: float, y: float, width: float, height: float) -> float:
        """The share of tissue in the level-0 rectangle (x, y, width, height)."""
        if self._integral is None:
            padded = np.zeros((self.mask.shape[0] + 1, self.mask.shape[1] + 1), dtype=np.int64)
            padded[1:, 1:] = np.cumsum(np.cumsum(self.mask, axis=0, dtype=np.int64), axis=1)
            self._integral = padded
        rows, cols = int(self.mask.shape[0]), int(self.mask.shape[1])
        sx, sy = self.scale
        c0 = min(max(int(np.floor(x / sx)), 0), cols)
        c1 = min(max(int(np.ceil((x + width) / sx)), 0), cols)
        r0 = min(max(int(np.floor(y / sy)), 0), rows)
        r1 = min(max(int(np.ceil((y + height) / sy)), 0), rows)
        area = (c1 - c0) * (r1 - r0)
        if area <= 0:
            return 0.0
        s = self._integral
        inside = int(s[r1, c1] - s[r0, c1] - s[r1, c0] + s[r0, c0])
        return inside / area


def otsu_mask(reader: SlideReader, level: int = -1, min_contrast: int = 12) -> TissueMask:
    """Tissue as the darker Otsu class of ``level`` (default: the lowest resolution).

    A level whose grey values span fewer than ``min_contrast`` levels is
    taken to be all background.
    """
    level = reader.check_level(level)
    pixels = reader.read_level(level)
    grey = luminance(pixels)
    width0, height0 = reader.dimensions
    scale = (width0 / grey.shape[1], height0 / grey.shape[0])
    low, high = np.percentile(grey, [1, 99]) if grey.size else (0, 0)
    if high - low < min_contrast:
        return TissueMask(np.zeros(grey.shape, dtype=bool), scale, threshold=None)
    threshold = otsu_threshold(grey)
    return TissueMask(grey <= threshold, scale, threshold=threshold)


def mask_from_image(path: Path, slide_size: tuple[int, int], backend: str | None = None) -> TissueMask:
    """A tissue mask from an image file: any non-zero pixel (first channel) is tissue.

    The image may be a pyramidal TIFF (PANDA-style masks; its lowest
    resolution is used) or a plain PNG/JPEG/TIFF covering the whole slide.
    """
    from PIL import Image

    from himl_cpath.slide import SlideOpenError, open_slide

    pixels: npt.NDArray[np.uint8]
    try:
        with open_slide(path, backend) as reader:
            pixels = reader.read_level(-1)
    except SlideOpenError:
        with Image.open(path) as image:
            pixels = np.asarray(image)
    first = pixels if pixels.ndim == 2 else pixels[..., 0]
    mask = first > 0
    width0, height0 = slide_size
    return TissueMask(mask, (width0 / mask.shape[1], height0 / mask.shape[0]))
