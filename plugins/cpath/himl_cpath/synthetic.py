"""Synthetic whole-slide images for tests, benchmarks and demos.

:func:`write_synthetic_slide` writes an Aperio-style (SVS-like) pyramidal TIFF
with tifffile: JPEG-compressed tiled levels, a stripped thumbnail as the
second page, and an ImageDescription that starts with ``Aperio`` and carries
``AppMag`` and ``MPP``, which is the layout OpenSlide's Aperio driver reads.
The picture is white background with a few elliptical "tissue" blobs of
pink, noisy texture; on a positive slide some tissue tiles also carry a dark
blue "signal" blob. Every level is rendered from the same geometry, so the
tissue lies in the same place at every resolution.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.uint8]

BACKGROUND = 242  # a little short of white, as scanners see glass


@dataclass(frozen=True)
class Ellipse:
    """A tissue region in level-0 pixels: centre, radii."""

    cx: float
    cy: float
    rx: float
    ry: float

    def inside(self, xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        return ((xs - self.cx) / self.rx) ** 2 + ((ys - self.cy) / self.ry) ** 2 <= 1.0


@dataclass
class SyntheticSlide:
    """What a synthetic slide holds, so tests can check results against it."""

    path: Path
    width: int
    height: int
    tissue: list[Ellipse]
    signal_cells: list[tuple[int, int]] = field(default_factory=list)  # level-0 (x, y) of signal squares
    signal_size: int = 0
    label: int = 0
    downsamples: tuple[int, ...] = (1, 4, 16)

    def tissue_mask(self, xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Whether each level-0 point (xs, ys) lies inside tissue."""
        inside = np.zeros(np.broadcast(xs, ys).shape, dtype=bool)
        for ellipse in self.tissue:
            inside |= ellipse.inside(xs, ys)
        return inside


def _textures(seed: int, size: int, count: int = 6) -> list[Array]:
    """A few tiles of pink, noisy "tissue" texture to draw from."""
    rng = np.random.default_rng(seed)
    base = np.array([214, 150, 190], dtype=np.float64)
    out = []
    for _ in range(count):
        noise = rng.normal(0.0, 18.0, size=(size // 4 + 1, size // 4 + 1, 1))
        noise = np.repeat(np.repeat(noise, 4, axis=0), 4, axis=1)[:size, :size]
        fine = rng.normal(0.0, 6.0, size=(size, size, 3))
        out.append(np.clip(base + noise + fine, 0, 255).astype(np.uint8))
    return out


def _render(
    slide: SyntheticSlide, textures: Sequence[Array], x0: int, y0: int, width: int, height: int, downsample: int
) -> Array:
    """The pixels of the rectangle at (x0, y0) (level pixels) of size width x height at ``downsample``."""
    xs = (np.arange(width, dtype=np.float64) + x0 + 0.5) * downsample
    ys = (np.arange(height, dtype=np.float64) + y0 + 0.5) * downsample
    tissue = slide.tissue_mask(xs[None, :], ys[:, None])
    out = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    if tissue.any():
        tex = textures[(x0 // max(width, 1) * 7 + y0 // max(height, 1) * 13 + downsample) % len(textures)]
        tex = np.resize(tex, (height, width, 3)) if tex.shape[:2] != (height, width) else tex
        out[tissue] = tex[tissue]
    size = slide.signal_size
    for sx, sy in slide.signal_cells:
        # signal squares are drawn in level-0 pixel units, clipped to this rectangle
        left, top = sx / downsample - x0, sy / downsample - y0
        right, bottom = left + size / downsample, top + size / downsample
        c0, c1 = max(0, math.floor(left)), min(width, math.ceil(right))
        r0, r1 = max(0, math.floor(top)), min(height, math.ceil(bottom))
        if c0 < c1 and r0 < r1:
            out[r0:r1, c0:c1] = (40, 40, 150)
    return out


def _tiles(
    slide: SyntheticSlide, textures: Sequence[Array], level_w: int, level_h: int, downsample: int, tile: int
) -> Iterator[Array]:
    for ty in range(0, level_h, tile):
        for tx in range(0, level_w, tile):
            yield _render(slide, textures, tx, ty, tile, tile, downsample)


def make_slide_geometry(
    width: int, height: int, *, seed: int = 0, blobs: int = 3, positive: bool = False, signal_size: int = 160
) -> tuple[list[Ellipse], list[tuple[int, int]]]:
    """Tissue ellipses (covering roughly a third of the slide) and, if ``positive``, signal squares in them."""
    rng = np.random.default_rng(seed)
    ellipses = []
    for _ in range(blobs):
        rx = rng.uniform(0.14, 0.22) * width
        ry = rng.uniform(0.14, 0.22) * height
        cx = rng.uniform(rx + 0.02 * width, width - rx - 0.02 * width)
        cy = rng.uniform(ry + 0.02 * height, height - ry - 0.02 * height)
        ellipses.append(Ellipse(cx, cy, rx, ry))
    signal: list[tuple[int, int]] = []
    if positive:
        for ellipse in ellipses:
            for _ in range(6):
                angle, radius = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.6)
                x = ellipse.cx + radius * ellipse.rx * math.cos(angle) - signal_size / 2
                y = ellipse.cy + radius * ellipse.ry * math.sin(angle) - signal_size / 2
                signal.append((int(x), int(y)))
    return ellipses, signal


def write_synthetic_slide(
    path: Path,
    width: int = 4000,
    height: int = 3000,
    *,
    seed: int = 0,
    positive: bool = False,
    tile: int = 256,
    downsamples: Sequence[int] = (1, 4, 16),
    mpp: float = 0.5,
    magnification: int = 20,
    quality: int = 90,
    blobs: int = 3,
) -> SyntheticSlide:
    """Write an Aperio-style pyramidal JPEG TIFF at ``path`` and describe what is in it.

    Args:
        path: the file to write (``.svs`` or ``.tiff``).
        width, height: level-0 size in pixels.
        seed: makes the tissue layout and texture reproducible.
        positive: draw dark "signal" squares inside the tissue (label 1).
        tile: TIFF tile size of every pyramid level.
        downsamples: the pyramid; the first must be 1.
        mpp, magnification: written as ``MPP`` and ``AppMag``.
        quality: JPEG quality.
        blobs: how many tissue ellipses.
    """
    import tifffile

    if downsamples[0] != 1:
        raise ValueError("the first downsample must be 1")
    ellipses, signal = make_slide_geometry(width, height, seed=seed, blobs=blobs, positive=positive)
    slide = SyntheticSlide(
        path=Path(path),
        width=width,
        height=height,
        tissue=ellipses,
        signal_cells=signal,
        signal_size=160 if positive else 0,
        label=int(positive),
        downsamples=tuple(downsamples),
    )
    textures = _textures(seed, tile)
    description = (
        f"Aperio Image Library v12.0.15 himl synthetic\r\n{width}x{height} ({tile}x{tile}) JPEG/RGB Q={quality}"
        f"|AppMag = {magnification}|MPP = {mpp:.4f}|Filename = {Path(path).stem}"
    )
    jpeg = {"compression": "jpeg", "compressionargs": {"level": quality}, "photometric": "rgb", "metadata": None}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        for index, downsample in enumerate(downsamples):
            level_w, level_h = max(1, width // downsample), max(1, height // downsample)
            tif.write(
                _tiles(slide, textures, level_w, level_h, downsample, tile),
                shape=(level_h, level_w, 3),
                dtype=np.uint8,
                tile=(tile, tile),
                description=description if index == 0 else f"Aperio Image Library {level_w}x{level_h}",
                **jpeg,
            )
            if index == 0:
                # Aperio's second page: a small stripped (not tiled) thumbnail
                scale = max(width, height) / 768
                thumb_w, thumb_h = max(1, int(width / scale)), max(1, int(height / scale))
                xs = (np.arange(thumb_w, dtype=np.float64) + 0.5) * (width / thumb_w)
                ys = (np.arange(thumb_h, dtype=np.float64) + 0.5) * (height / thumb_h)
                thumb = np.full((thumb_h, thumb_w, 3), BACKGROUND, dtype=np.uint8)
                thumb[slide.tissue_mask(xs[None, :], ys[:, None])] = (214, 150, 190)
                tif.write(thumb, description=f"Aperio Image Library {thumb_w}x{thumb_h}", **jpeg)
    return slide
