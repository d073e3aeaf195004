"""Figures of a DeepMIL test run, drawn from the rows of ``test_output.csv``.

:func:`write_figures` writes into its folder:

- ``test_roc_curve.png`` and ``test_roc_curve.csv``: the ROC curve of the
  slides (one-vs-rest, one curve per class, when there are more than two
  classes), with the area under it in the legend; the CSV has columns
  ``class, threshold, fpr, tpr``.
- ``test_pr_curve.png`` and ``test_pr_curve.csv``: the precision-recall curve,
  with the average precision in the legend; columns
  ``class, threshold, recall, precision``.
- ``test_confusion_matrix.png``: slide labels against slide predictions, with
  the count and the fraction of the true class in each cell.
- ``attention/<slide_id>_top.png`` and ``attention/<slide_id>_bottom.png``: the
  ``top_k`` tiles of each slide with the highest and the lowest attention, in a
  grid (highest first, and lowest first), each captioned with its attention
  and its level-0 x, y.
- ``attention/<slide_id>_heatmap.png``: the slide's thumbnail with every tile's
  rectangle tinted by its attention, and a labelled colour bar on the right.
  Only for slides that have a slide file and tile coordinates. By default all
  heatmaps share one colour scale (the attention range of every slide shown),
  so a slide with low attention everywhere looks cool; a per-slide scale is
  an option. Every attention figure has a title band of :data:`TITLE_HEIGHT`
  pixels on top: slide id, true label, predicted class and its probability.

``<slide_id>`` stands for the safe file name of the id
(:func:`himl_cpath.safe_names.file_stem`): the id itself when it is a plain name.

Curves are computed per slide (every tile row of a slide carries the slide's
label and probabilities) with numpy alone. Figures are drawn on
:class:`matplotlib.figure.Figure` objects with the Agg canvas, so pyplot's
global state is never touched; tile grids and heatmaps are drawn with PIL so
that their pixels are the slide's own.

A slide whose attention figures fail (an unreadable slide, a missing tile
image) is named in one warning line on stderr, and the other figures are
still written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from himl_cpath.progress import Progress
from himl_cpath.safe_names import check_distinct, file_stem, inside
from himl_cpath.slide_table import SlideRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from PIL import Image

    from himl_cpath.slide import SlideReader

FloatArray = npt.NDArray[np.float64]
RGBArray = npt.NDArray[np.uint8]

ROC_NAME = "test_roc_curve"
PR_NAME = "test_pr_curve"
CONFUSION_NAME = "test_confusion_matrix.png"
ATTENTION_FOLDER = "attention"

#: Layout of a tile grid: white space around cells, and room for two caption lines under each tile.
GRID_MARGIN = 4
GRID_CAPTION_HEIGHT = 26
GRID_COLUMNS = 4
#: How much of a heatmap tile's colour covers the thumbnail under it.
HEATMAP_ALPHA = 0.5
HEATMAP_COLORMAP = "jet"
HEATMAP_MAX_SIZE = (512, 512)


# -- curves -------------------------------------------------------------------


def _thresholded_counts(scores: Sequence[float], labels: Sequence[int]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Cumulative true and false positives when every slide scoring at least each threshold is called positive.

    Thresholds are the distinct scores, highest first; tied scores cross the
    threshold together, so a tie adds one point to the curve, not a staircase.
    """
    score = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(labels, dtype=np.float64)
    if score.shape != truth.shape or score.ndim != 1:
        raise ValueError(f"scores and labels need the same 1-D shape, got {score.shape} and {truth.shape}")
    order = np.argsort(-score, kind="mergesort")
    score, truth = score[order], truth[order]
    # the last index of each run of equal scores
    ends = np.r_[np.flatnonzero(np.diff(score) != 0), score.size - 1] if score.size else np.array([], dtype=np.intp)
    true_positives = np.cumsum(truth)[ends]
    false_positives = (ends + 1) - true_positives
    return true_positives, false_positives.astype(np.float64), score[ends]


def roc_curve(scores: Sequence[float], labels: Sequence[int]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """False and true positive rates, and their thresholds (highest first), of ``scores`` against 0/1 ``labels``.

    The curve starts at (0, 0) with threshold ``inf`` and ends at (1, 1).

    Raises:
        ValueError: the labels have no positive or no negative.
    """
    true_positives, false_positives, thresholds = _thresholded_counts(scores, labels)
    positives = true_positives[-1] if true_positives.size else 0.0
    negatives = false_positives[-1] if false_positives.size else 0.0
    if positives == 0 or negatives == 0:
        raise ValueError("a ROC curve needs at least one positive and one negative")
    fpr = np.r_[0.0, false_positives / negatives]
    tpr = np.r_[0.0, true_positives / positives]
    return fpr, tpr, np.r_[np.inf, thresholds]


def pr_curve(scores: Sequence[float], labels: Sequence[int]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Recall and precision, and their thresholds (highest first), of ``scores`` against 0/1 ``labels``.

    The curve starts at recall 0, precision 1 (threshold ``inf``, nothing
    called positive) and ends where every slide is called positive.

    Raises:
        ValueError: the labels have no positive.
    """
    true_positives, false_positives, thresholds = _thresholded_counts(scores, labels)
    positives = true_positives[-1] if true_positives.size else 0.0
    if positives == 0:
        raise ValueError("a precision-recall curve needs at least one positive")
    recall = np.r_[0.0, true_positives / positives]
    precision = np.r_[1.0, true_positives / (true_positives + false_positives)]
    return recall, precision, np.r_[np.inf, thresholds]


def area_under_curve(x: FloatArray, y: FloatArray) -> float:
    """The trapezoid area under the points (x, y), x not decreasing."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def average_precision(recall: FloatArray, precision: FloatArray) -> float:
    """Each rise of recall times the precision reached there (a step sum, no interpolation)."""
    return float(np.sum(np.diff(recall) * precision[1:]))


def confusion_matrix(labels: Sequence[int], predictions: Sequence[int], num_classes: int) -> npt.NDArray[np.int64]:
    """Counts of slides by true class (rows) and predicted class (columns)."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for label, prediction in zip(labels, predictions, strict=True):
        matrix[label, prediction] += 1
    return matrix


# -- reading rows -------------------------------------------------------------


def _int(value: Any, default: int = -1) -> int:
    if value is None or value == "":
        return default
    return int(float(value))


def _float(value: Any) -> float:
    return float(value)


@dataclass(frozen=True)
class SlideScore:
    """What the curves need of one slide: its label, prediction and class probabilities."""

    label: int
    prediction: int
    probabilities: tuple[float, ...]


def slide_scores(rows: Sequence[Mapping[str, Any]], num_classes: int) -> dict[str, SlideScore]:
    """One entry per slide id (in the order they first appear), from the slide's first row."""
    found: dict[str, SlideScore] = {}
    for row in rows:
        slide_id = str(row["slide_id"])
        if slide_id in found:
            continue
        if all(f"prob_{c}" in row for c in range(num_classes)):
            probabilities = tuple(_float(row[f"prob_{c}"]) for c in range(num_classes))
        elif num_classes == 2:
            # only the positive class's probability was written
            positive = _float(row["probability"])
            probabilities = (1.0 - positive, positive)
        else:
            raise ValueError(f"test rows need columns prob_0 .. prob_{num_classes - 1}")
        found[slide_id] = SlideScore(_int(row["label"]), _int(row["prediction"]), probabilities)
    return found


def slides_to_show(slides: Mapping[str, SlideScore], max_slides: int) -> set[str]:
    """The slides that get attention figures: all, or ``max_slides`` of them shared out over the true classes.

    Within a class the slides come by the probability the model gave that
    class, alternating between the most and the least confident, so that
    both the clearest cases and the worst misses are shown.
    """
    if max_slides <= 0 or len(slides) <= max_slides:
        return set(slides)
    queues: dict[int, list[str]] = {}
    for label in sorted({s.label for s in slides.values()}):
        ranked = sorted(
            (i for i, s in slides.items() if s.label == label),
            key=lambda i: (-slides[i].probabilities[label] if 0 <= label < len(slides[i].probabilities) else 0.0, i),
        )
        queue: list[str] = []
        while ranked:  # most confident, least confident, second most, ...
            queue.append(ranked.pop(0))
            if ranked:
                queue.append(ranked.pop())
        queues[label] = queue
    chosen: set[str] = set()
    while len(chosen) < max_slides:
        for queue in queues.values():
            if queue and len(chosen) < max_slides:
                chosen.add(queue.pop(0))
    return chosen


# -- matplotlib figures -------------------------------------------------------


def _new_figure(size: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _write_csv(path: Path, header: Sequence[str], lines: Sequence[Sequence[object]]) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(lines)


def _curve_classes(num_classes: int) -> list[int]:
    """The classes that get a curve: the positive class of a binary task, every class otherwise."""
    return [1] if num_classes == 2 else list(range(num_classes))


def write_curves(folder: Path, slides: Mapping[str, SlideScore], num_classes: int) -> list[Path]:
    """The ROC and PR curves of ``slides`` as PNG and CSV files in ``folder``; the paths written."""
    ids = sorted(slides)
    labels = np.array([slides[s].label for s in ids], dtype=np.int64)
    roc_figure, pr_figure = _new_figure((6, 5)), _new_figure((6, 5))
    roc_axes, pr_axes = roc_figure.add_subplot(), pr_figure.add_subplot()
    roc_lines: list[tuple[object, ...]] = []
    pr_lines: list[tuple[object, ...]] = []
    for cls in _curve_classes(num_classes):
        truth = (labels == cls).astype(np.int64).tolist()
        scores = [slides[s].probabilities[cls] for s in ids]
        name = "" if num_classes == 2 else f"class {cls}: "
        positives = sum(truth)
        if positives == 0 or positives == len(truth):
            # one-sided classes have no curve; say so rather than draw nothing silently
            note = f"{name}no curve ({'no' if positives == 0 else 'only'} positive slides)"
            roc_axes.plot([], [], " ", label=note)
            pr_axes.plot([], [], " ", label=note)
            continue
        fpr, tpr, roc_thresholds = roc_curve(scores, truth)
        recall, precision, pr_thresholds = pr_curve(scores, truth)
        roc_axes.plot(fpr, tpr, label=f"{name}AUC {area_under_curve(fpr, tpr):.3f}")
        pr_axes.step(recall, precision, where="pre", label=f"{name}AP {average_precision(recall, precision):.3f}")
        roc_lines += zip([cls] * fpr.size, roc_thresholds.tolist(), fpr.tolist(), tpr.tolist(), strict=True)
        pr_lines += zip([cls] * recall.size, pr_thresholds.tolist(), recall.tolist(), precision.tolist(), strict=True)
    roc_axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    for axes, title, x_label, y_label in (
        (roc_axes, "ROC curve", "False positive rate", "True positive rate"),
        (pr_axes, "Precision-recall curve", "Recall", "Precision"),
    ):
        axes.set(title=title, xlabel=x_label, ylabel=y_label, xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right" if axes is roc_axes else "lower left", fontsize="small")
    written = []
    for figure, base, header, lines in (
        (roc_figure, ROC_NAME, ("class", "threshold", "fpr", "tpr"), roc_lines),
        (pr_figure, PR_NAME, ("class", "threshold", "recall", "precision"), pr_lines),
    ):
        figure.tight_layout()
        figure.savefig(folder / f"{base}.png")
        _write_csv(folder / f"{base}.csv", header, lines)
        written += [folder / f"{base}.png", folder / f"{base}.csv"]
    return written


def write_confusion_matrix(folder: Path, slides: Mapping[str, SlideScore], num_classes: int) -> Path:
    """``test_confusion_matrix.png``: counts of slides per true and predicted class, shaded by row fraction."""
    ids = sorted(slides)
    matrix = confusion_matrix([slides[s].label for s in ids], [slides[s].prediction for s in ids], num_classes)
    totals = matrix.sum(axis=1, keepdims=True)
    fractions = matrix / np.maximum(totals, 1)
    side = 2.0 + 0.8 * num_classes
    figure = _new_figure((side + 1.0, side))
    axes = figure.add_subplot()
    shown = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(shown, ax=axes, label="fraction of true class")
    for true in range(num_classes):
        for predicted in range(num_classes):
            colour = "white" if fractions[true, predicted] > 0.5 else "black"
            text = f"{matrix[true, predicted]}\n{fractions[true, predicted]:.2f}"
            axes.text(predicted, true, text, ha="center", va="center", color=colour, fontsize="small")
    ticks = list(range(num_classes))
    axes.set(xticks=ticks, yticks=ticks, xlabel="Predicted class", ylabel="True class", title="Confusion matrix")
    figure.tight_layout()
    path = folder / CONFUSION_NAME
    figure.savefig(path)
    return path


# -- tile grids and heatmaps --------------------------------------------------


def tile_grid(images: Sequence[RGBArray], captions: Sequence[str], columns: int = GRID_COLUMNS) -> Image.Image:
    """The images in a grid, row by row, each with its caption under it.

    Every cell is as wide as the widest image (or caption) and as high as the
    highest image plus :data:`GRID_CAPTION_HEIGHT`; cell ``i`` has its image's
    top-left corner at :func:`grid_cell_origin` ``(i, ...)``, unscaled.
    """
    from PIL import Image, ImageDraw

    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    columns = max(1, min(columns, len(images)))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    caption_width = max((int(measure.multiline_textbbox((0, 0), c)[2]) for c in captions), default=0)
    cell_width = max([caption_width, *(image.shape[1] for image in images)], default=1)
    cell_height = max((image.shape[0] for image in images), default=1)
    rows = math.ceil(len(images) / columns) if images else 1
    # the origin of the cell after the last row is the bottom edge of the grid
    height = grid_cell_origin(columns * rows, (cell_width, cell_height), columns)[1]
    canvas = Image.new("RGB", (GRID_MARGIN + columns * (cell_width + GRID_MARGIN), height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for index, (pixels, caption) in enumerate(zip(images, captions, strict=True)):
        left, top = grid_cell_origin(index, (cell_width, cell_height), columns)
        canvas.paste(Image.fromarray(np.ascontiguousarray(pixels[..., :3])), (left, top))
        draw.multiline_text((left, top + cell_height + 1), caption, fill=(0, 0, 0), spacing=2)
    return canvas


def grid_cell_origin(index: int, cell_size: tuple[int, int], columns: int) -> tuple[int, int]:
    """Where (left, top) the image of cell ``index`` lies in a :func:`tile_grid` of cells ``cell_size`` (w, h)."""
    column, row = index % columns, index // columns
    left = GRID_MARGIN + column * (cell_size[0] + GRID_MARGIN)
    top = GRID_MARGIN + row * (cell_size[1] + GRID_CAPTION_HEIGHT + GRID_MARGIN)
    return left, top


@dataclass(frozen=True)
class _Tile:
    """One tile row of a slide: its attention, level-0 box (x0, y0, x1, y1; -1 when unknown) and image file."""

    attention: float
    box: tuple[int, int, int, int]
    image: str

    @property
    def located(self) -> bool:
        return self.box[0] >= 0 and self.box[1] >= 0

    def caption(self) -> str:
        where = f"x={self.box[0]}, y={self.box[1]}" if self.located else Path(self.image).name
        return f"att {self.attention:.4g}\n{where}"


def _tile_of(row: Mapping[str, Any]) -> _Tile:
    x, y = _int(row.get("tile_x")), _int(row.get("tile_y"))
    image = row.get("image")
    return _Tile(
        attention=_float(row["attention"]),
        box=(x, y, _int(row.get("right")), _int(row.get("bottom"))),
        image="" if image is None else str(image),
    )


class _TileSource:
    """Tile pixels of one slide: read from the slide file (opened once, when first needed) or from image files."""

    def __init__(
        self,
        record: SlideRecord | None,
        backend: str | None,
        tiles_root: Path | None,
        tile_size: int,
        tile_level: int,
    ) -> None:
        self.record = record
        self.backend = backend
        self.tiles_root = tiles_root
        self.tile_size = tile_size
        self.tile_level = tile_level
        self._reader: SlideReader | None = None

    def reader(self) -> SlideReader:
        if self.record is None:
            raise ValueError("no slide file")
        if self._reader is None:
            from himl_cpath.slide import open_slide

            self._reader = open_slide(self.record.image, self.backend)
        return self._reader

    def pixels(self, tile: _Tile) -> RGBArray:
        if tile.located and self.record is not None:
            size = (self.tile_size, self.tile_size)
            return self.reader().read_region((tile.box[0], tile.box[1]), self.tile_level, size)
        if not tile.image:
            raise ValueError("a tile has neither slide coordinates nor an image file")
        from PIL import Image

        path = Path(tile.image) if self.tiles_root is None else self.tiles_root / tile.image
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def attention_heatmap(
    thumbnail: RGBArray,
    scale: tuple[float, float],
    boxes: Sequence[tuple[float, float, float, float]],
    attentions: Sequence[float],
    value_range: tuple[float, float] | None = None,
) -> Image.Image:
    """``thumbnail`` with each level-0 box tinted by its attention, and a labelled colour bar on its right.

    ``scale`` is thumbnail pixels per level-0 pixel (x, y). Attention is
    mapped to colours over ``value_range`` (low, high): one range shared by
    every slide of a test set, so that a slide whose attention is low
    everywhere does not look hot; without it, over the slide's own range.
    Pixels outside every box are the thumbnail's, unchanged.
    """
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    height, width = thumbnail.shape[:2]
    values = np.asarray(attentions, dtype=np.float64)
    if value_range is not None:
        low, high = value_range
        scale_name = "attention\n(scale of\nall slides)"
    else:
        low = float(values.min()) if values.size else 0.0
        high = float(values.max()) if values.size else 1.0
        scale_name = "attention\n(this slide's\nrange)"
    span = high - low
    normed = np.clip((values - low) / span, 0.0, 1.0) if span > 0 else np.full(values.shape, 0.5)
    colormap = colormaps[HEATMAP_COLORMAP]
    colours = np.asarray(colormap(normed), dtype=np.float64)[..., :3] * 255.0
    tint = np.zeros((height, width, 3), dtype=np.float64)
    cover = np.zeros((height, width), dtype=np.float64)
    for (x0, y0, x1, y1), colour in zip(boxes, colours, strict=True):
        left, top = max(0, math.floor(x0 * scale[0])), max(0, math.floor(y0 * scale[1]))
        right = min(width, max(left + 1, math.ceil(x1 * scale[0])))
        bottom = min(height, max(top + 1, math.ceil(y1 * scale[1])))
        tint[top:bottom, left:right] = colour
        cover[top:bottom, left:right] = HEATMAP_ALPHA
    blended = thumbnail[..., :3] * (1.0 - cover[..., None]) + tint * cover[..., None]
    picture = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))

    # the colour bar: highest attention at the top, with the range written beside it
    bar_width, text_width = 16, 70
    bar = (np.asarray(colormap(np.linspace(1.0, 0.0, height)), dtype=np.float64)[:, :3] * 255).astype(np.uint8)
    canvas = Image.new("RGB", (width + 8 + bar_width + text_width, height), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    canvas.paste(Image.fromarray(np.repeat(bar[:, None, :], bar_width, axis=1)), (width + 8, 0))
    draw = ImageDraw.Draw(canvas)
    text_left = width + 8 + bar_width + 3
    draw.text((text_left, 0), f"{high:.3g}", fill=(0, 0, 0))
    draw.text((text_left, max(0, height - 12)), f"{low:.3g}", fill=(0, 0, 0))
    draw.multiline_text((text_left, max(0, height // 2 - 18)), scale_name, fill=(0, 0, 0), spacing=2)
    return canvas


#: Height in pixels of the title band above each attention figure.
TITLE_HEIGHT = 16


def titled(image: Image.Image, title: str) -> Image.Image:
    """``image`` with ``title`` written in a white band of :data:`TITLE_HEIGHT` pixels above it."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (image.width, image.height + TITLE_HEIGHT), (255, 255, 255))
    canvas.paste(image, (0, TITLE_HEIGHT))
    ImageDraw.Draw(canvas).text((4, 2), title, fill=(0, 0, 0))
    return canvas


def slide_title(slide_id: str, score: SlideScore | None) -> str:
    """What a reader needs above a slide's figure: its id, true label, and predicted class with its probability."""
    if score is None:
        return slide_id
    probability = score.probabilities[score.prediction] if 0 <= score.prediction < len(score.probabilities) else None
    predicted = f"predicted {score.prediction}" + (f" (p={probability:.2f})" if probability is not None else "")
    return f"{slide_id}  |  true label {score.label}  |  {predicted}"


def write_slide_figures(
    folder: Path,
    slide_id: str,
    tiles: Sequence[_Tile],
    source: _TileSource,
    *,
    top_k: int,
    written: list[Path],
    title: str = "",
    value_range: tuple[float, float] | None = None,
) -> None:
    """The top and bottom attention grids of one slide, and its heatmap when the slide can be read.

    Each file is added to ``written`` as soon as it is saved, so a failure part way keeps the earlier ones.
    ``title`` goes above each figure (:func:`slide_title`); ``value_range`` is the heatmap's colour scale
    (see :func:`attention_heatmap`).
    """
    ranked = sorted(tiles, key=lambda t: t.attention, reverse=True)
    top = ranked[:top_k]
    bottom = ranked[::-1][:top_k]
    try:
        for chosen, suffix in ((top, "top"), (bottom, "bottom")):
            grid = tile_grid([source.pixels(t) for t in chosen], [t.caption() for t in chosen])
            path = inside(folder, folder / f"{file_stem(slide_id)}_{suffix}.png")
            titled(grid, f"{title or slide_id}  |  {suffix} {len(chosen)} tiles by attention").save(path)
            written.append(path)
        located = [t for t in tiles if t.located]
        if source.record is not None and located:
            reader = source.reader()
            thumbnail = reader.thumbnail(HEATMAP_MAX_SIZE)
            width, height = reader.dimensions
            scale = (thumbnail.shape[1] / width, thumbnail.shape[0] / height)
            extent = source.tile_size * reader.level_downsamples[reader.check_level(source.tile_level)]
            boxes = [
                (
                    float(t.box[0]),
                    float(t.box[1]),
                    float(t.box[2]) if t.box[2] > t.box[0] else t.box[0] + extent,
                    float(t.box[3]) if t.box[3] > t.box[1] else t.box[1] + extent,
                )
                for t in located
            ]
            heatmap = attention_heatmap(thumbnail, scale, boxes, [t.attention for t in located], value_range)
            path = inside(folder, folder / f"{file_stem(slide_id)}_heatmap.png")
            titled(heatmap, title or slide_id).save(path)
            written.append(path)
    finally:
        source.close()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- the entry point ----------------------------------------------------------


def write_figures(
    folder: Path,
    rows: Sequence[Mapping[str, Any]],
    slides: Mapping[str, SlideRecord],
    *,
    num_classes: int,
    tile_size: int,
    tile_level: int,
    top_k: int = 12,
    backend: str | None = None,
    tiles_root: Path | None = None,
    max_slides: int = 0,
    show_progress: bool = False,
    shared_scale: bool = True,
) -> list[Path]:
    """Write the test figures of a DeepMIL run into ``folder``; the paths written.

    Args:
        folder: where the figures go (created); attention figures go in its ``attention`` folder.
        rows: the rows of ``test_output.csv``, one per tile (values may be strings, as read from CSV).
        slides: slide id to slide file; a slide missing here gets tile grids from
            each row's ``image`` file and no heatmap.
        num_classes: the number of classes; 2 draws one curve of ``prob_1``,
            more draw one one-vs-rest curve per class.
        tile_size: tile side in pixels of ``tile_level``.
        tile_level: the pyramid level tiles were read at.
        top_k: how many tiles each attention grid shows.
        backend: slide reader backend(s), as :func:`himl_cpath.slide.open_slide` takes.
        tiles_root: the folder that rows' ``image`` paths are relative to.
        max_slides: attention figures for at most this many slides (0: all);
            see :func:`slides_to_show`. The curves always use every slide.
        show_progress: show counts, rate and time left of the attention figures on stderr.
        shared_scale: colour every heatmap over one attention range, that of
            all the slides shown (the default); else each over its own range.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    per_slide = slide_scores(rows, num_classes)
    written = write_curves(folder, per_slide, num_classes)
    written.append(write_confusion_matrix(folder, per_slide, num_classes))

    tiles: dict[str, list[_Tile]] = {}
    for row in rows:
        tiles.setdefault(str(row["slide_id"]), []).append(_tile_of(row))
    check_distinct(tiles, "test output")
    attention_folder = folder / ATTENTION_FOLDER
    attention_folder.mkdir(exist_ok=True)
    shown = slides_to_show(per_slide, max_slides)
    chosen = [(slide_id, slide_tiles) for slide_id, slide_tiles in tiles.items() if slide_id in shown]
    shared = [t.attention for _, slide_tiles in chosen for t in slide_tiles]
    value_range = (min(shared), max(shared)) if shared_scale and shared else None
    with Progress("attention figures", len(chosen), "slides", show=show_progress) as progress:
        for slide_id, slide_tiles in chosen:
            source = _TileSource(slides.get(slide_id), backend, tiles_root, tile_size, tile_level)
            try:
                write_slide_figures(
                    attention_folder,
                    slide_id,
                    slide_tiles,
                    source,
                    top_k=top_k,
                    written=written,
                    title=slide_title(slide_id, per_slide.get(slide_id)),
                    value_range=value_range,
                )
            except Exception as exc:  # one slide's failure must not cost the others their figures
                progress.note(f"himl: warning: attention figures of slide {slide_id}: {_one_line(exc)}")
            progress.update()
    return written
