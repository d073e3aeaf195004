"""A tifffile backend for plain pyramidal TIFFs (and Aperio SVS) that OpenSlide does not take.

Levels are the pyramid tifffile finds in the first series (SVS levels or
SubIFDs); failing that, the tiled pages that shrink one after the other. Only
the tiles a region touches are read and decoded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tifffile

from himl_cpath.slide import SlideReader

if TYPE_CHECKING:
    from himl_cpath.slide import RGBArray

_APERIO_FIELD = re.compile(r"\|\s*([A-Za-z ]+?)\s*=\s*([^|]*)")


@contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """Keep tifffile's warnings about damaged files off stderr; the reader raises its own error."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _pyramid(tif: tifffile.TiffFile) -> list[Any]:
    """The pages of each level, largest first."""
    series = tif.series[0]
    levels = [level.keyframe for level in series.levels]
    if len(levels) > 1:
        return levels
    first = tif.pages.first
    pages = [first]
    for page in tif.pages[1:]:
        if not isinstance(page, tifffile.TiffPage) or not page.is_tiled:
            continue
        last = pages[-1]
        if (
            page.imagewidth < last.imagewidth
            and page.imagelength < last.imagelength
            and page.shape[2:] == last.shape[2:]
        ):
            pages.append(page)
    return pages


class TifffileReader(SlideReader):
    """Tiled RGB(A) pyramidal TIFFs, decoded tile by tile with tifffile (JPEG through imagecodecs)."""

    backend = "tifffile"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        with _quiet_tifffile():
            self.tif = tifffile.TiffFile(str(path))
        try:
            with _quiet_tifffile():
                self.pages = _pyramid(self.tif)
            first = self.pages[0]
            if not first.is_tiled:
                raise ValueError("not a tiled TIFF")
            if first.samplesperpixel not in (3, 4) or first.dtype != np.uint8:
                raise ValueError(f"expected 8-bit RGB(A) pixels, found {first.samplesperpixel} x {first.dtype}")
            size = self.tif.filehandle.size
            for page in self.pages:
                if any(o + c > size for o, c in zip(page.dataoffsets, page.databytecounts, strict=True)):
                    raise ValueError(f"truncated file: tiles of page {page.index} lie beyond its end")
        except Exception:
            with _quiet_tifffile():
                self.tif.close()
            raise
        self._description = str(first.description or "")

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((int(p.imagewidth), int(p.imagelength)) for p in self.pages)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        width0, height0 = self.level_dimensions[0]
        return tuple((width0 / w + height0 / h) / 2 for w, h in self.level_dimensions)

    def _aperio(self, key: str) -> float | None:
        if not self._description.startswith("Aperio"):
            return None
        for name, value in _APERIO_FIELD.findall(self._description):
            if name.strip() == key:
                try:
                    return float(value)
                except ValueError:
                    return None
        return None

    @property
    def mpp(self) -> tuple[float, float] | None:
        aperio = self._aperio("MPP")
        if aperio is not None:
            return aperio, aperio
        page = self.pages[0]
        unit = page.tags.get("ResolutionUnit")
        xres, yres = page.tags.get("XResolution"), page.tags.get("YResolution")
        if unit is None or xres is None or yres is None:
            return None
        microns = {2: 25400.0, 3: 10000.0}.get(int(unit.value))  # per inch, per centimetre
        xnum, xden = xres.value
        ynum, yden = yres.value
        if microns is None or not xnum or not ynum:
            return None
        return microns * xden / xnum, microns * yden / ynum

    @property
    def objective_power(self) -> float | None:
        return self._aperio("AppMag")

    def _tile(self, page: Any, index: int) -> RGBArray:
        offset, count = page.dataoffsets[index], page.databytecounts[index]
        if not count:
            return np.full((page.tilelength, page.tilewidth, 3), 255, dtype=np.uint8)
        handle = self.tif.filehandle
        handle.seek(offset)
        data = handle.read(count)
        segment, _, _ = page.decode(data, index, jpegtables=page.jpegtables)
        return segment.reshape(segment.shape[-3:])[..., :3]  # type: ignore[no-any-return]

    def _read(self, x: int, y: int, level: int, width: int, height: int) -> RGBArray:
        page = self.pages[level]
        downsample = self.level_downsamples[level]
        left, top = int(x // downsample), int(y // downsample)
        level_w, level_h = self.level_dimensions[level]
        out = np.full((height, width, 3), 255, dtype=np.uint8)
        tw, th = page.tilewidth, page.tilelength
        across = (level_w + tw - 1) // tw
        x0, x1 = max(left, 0), min(left + width, level_w)
        y0, y1 = max(top, 0), min(top + height, level_h)
        for row in range(y0 // th, (y1 - 1) // th + 1 if y1 > y0 else 0):
            for col in range(x0 // tw, (x1 - 1) // tw + 1 if x1 > x0 else 0):
                tile = self._tile(page, row * across + col)
                # the part of this tile inside the request
                tx0, ty0 = max(x0, col * tw), max(y0, row * th)
                tx1, ty1 = min(x1, (col + 1) * tw), min(y1, (row + 1) * th)
                out[ty0 - top : ty1 - top, tx0 - left : tx1 - left] = tile[
                    ty0 - row * th : ty1 - row * th, tx0 - col * tw : tx1 - col * tw
                ]
        return out

    def close(self) -> None:
        self.tif.close()
