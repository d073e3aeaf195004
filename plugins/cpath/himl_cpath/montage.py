"""Montages: many slides side by side in one picture, each with its id (and label) under it.

Each slide is read at one pyramid level in a worker process and scaled to a
common cell size; a mask, when the slides table gives one, tints the tissue
it marks. A slide that cannot be read is named in one warning line and left
out. The result is written as ``montage.png`` and ``montage.jpg``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from himl_cpath.progress import Progress
from himl_cpath.slide_table import SlideRecord
from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

CAPTION_HEIGHT = 20
#: Caption text size in pixels: legible at the default width.
CAPTION_FONT_SIZE = 14
MARGIN = 4


@dataclass
class MontageResult:
    """Where the montage went, which slides it shows and which were left out (with why)."""

    png: Path
    jpg: Path
    shown: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_slide_image(record: SlideRecord, level: int, max_side: int, backend: str | None) -> npt.NDArray[np.uint8]:
    """The slide at ``level`` (negative counts from the lowest resolution), scaled to fit ``max_side``."""
    import numpy as np
    from PIL import Image

    from himl_cpath.slide import open_slide
    from himl_cpath.tissue import mask_from_image

    with open_slide(record.image, backend) as reader:
        chosen = (
            reader.check_level(level) if -reader.level_count <= level < reader.level_count else reader.level_count - 1
        )
        pixels = reader.read_level(chosen)
        mask = mask_from_image(record.mask, reader.dimensions, backend) if record.mask else None
    image = Image.fromarray(pixels)
    scale = max_side / max(image.size)
    if scale != 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR)
    if mask is not None:
        tint = Image.fromarray((mask.mask * 255).astype(np.uint8)).resize(image.size, Image.Resampling.NEAREST)
        green = Image.new("RGB", image.size, (0, 170, 0))
        image = Image.composite(Image.blend(image, green, 0.35), image, tint)
    return np.asarray(image)


def _load(args: tuple[SlideRecord, int, int, str | None]) -> tuple[str, npt.NDArray[np.uint8] | None, str]:
    record, level, max_side, backend = args
    try:
        return record.slide_id, load_slide_image(record, level, max_side, backend), ""
    except Exception as exc:
        return record.slide_id, None, _one_line(exc)


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    """``text``, cut with an ellipsis where it would be wider than ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def make_montage(
    slides: Sequence[SlideRecord],
    output: Path,
    *,
    level: int = -1,
    width: int = 1000,
    processes: int = 1,
    backend: str | None = None,
    warn: Callable[[str], None] | None = None,
    show_progress: bool = False,
) -> MontageResult:
    """Write ``montage.png`` and ``montage.jpg`` of ``slides`` into the folder ``output``.

    Args:
        slides: the slides, in the order they appear (row by row).
        output: the folder for the two files (created).
        level: pyramid level to read (negative counts from the lowest resolution;
            a slide without that level uses its lowest resolution).
        width: width of the montage in pixels.
        processes: worker processes reading slides.
        backend: slide reader backend(s), as :func:`himl_cpath.slide.open_slide` takes.
        warn: called with one line per slide left out (default: stderr).
        show_progress: show counts, rate and time left of the thumbnails on stderr.
    """
    from PIL import Image, ImageDraw, ImageFont

    if not slides:
        raise HimlError("no slides to put in a montage")
    if width < 64:
        raise HimlError(f"montage width must be at least 64 pixels, got {width}")
    warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
    columns = max(1, math.ceil(math.sqrt(len(slides))))
    cell = max(16, (width - MARGIN) // columns - MARGIN)
    jobs = [(record, level, cell, backend) for record in slides]
    loaded = []
    with Progress("montage thumbnails", len(jobs), "slides", show=show_progress) as progress:
        if processes > 1:
            import multiprocessing

            with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
                for item in pool.map(_load, jobs):
                    loaded.append(item)
                    progress.update()
        else:
            for job in jobs:
                loaded.append(_load(job))
                progress.update()

    result = MontageResult(output / "montage.png", output / "montage.jpg")
    labels = {r.slide_id: r.label for r in slides}
    images: list[tuple[str, npt.NDArray[np.uint8]]] = []
    for slide_id, pixels, error in loaded:
        if pixels is None:
            result.skipped[slide_id] = error
            warn(f"himl: warning: montage leaves out slide {slide_id}: {error}")
        else:
            images.append((slide_id, pixels))
            result.shown.append(slide_id)
    if not images:
        raise HimlError(f"none of the {len(slides)} slides could be read for the montage")
    columns = max(1, math.ceil(math.sqrt(len(images))))
    rows = math.ceil(len(images) / columns)
    row_height = cell + CAPTION_HEIGHT + MARGIN
    canvas = Image.new("RGB", (width, MARGIN + rows * row_height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=CAPTION_FONT_SIZE)
    for index, (slide_id, pixels) in enumerate(images):
        col, row = index % columns, index // columns
        left = MARGIN + col * (cell + MARGIN)
        top = MARGIN + row * row_height
        tile = Image.fromarray(pixels)
        # the thumbnail sits on the bottom of its cell, so that its caption is right against it
        canvas.paste(tile, (left + (cell - tile.width) // 2, top + cell - tile.height))
        caption = f"{slide_id} ({labels[slide_id]})" if labels.get(slide_id) else slide_id
        caption = _fit(draw, caption, font, cell)
        text_width = draw.textlength(caption, font=font)
        draw.text((left + (cell - text_width) / 2, top + cell + 2), caption, fill=(0, 0, 0), font=font)
    output.mkdir(parents=True, exist_ok=True)
    canvas.save(result.png)
    canvas.save(result.jpg, quality=90)
    return result
