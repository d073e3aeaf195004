"""DeepMIL test figures: numpy ROC and PR curves, the files written, and attention grids and heatmaps."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from himl_cpath.mil_figures import (
    GRID_MARGIN,
    HEATMAP_ALPHA,
    HEATMAP_COLORMAP,
    TITLE_HEIGHT,
    SlideScore,
    area_under_curve,
    average_precision,
    confusion_matrix,
    grid_cell_origin,
    pr_curve,
    roc_curve,
    slides_to_show,
    write_figures,
)
from himl_cpath.slide import open_slide
from himl_cpath.slide_table import SlideRecord
from himl_cpath.synthetic import SyntheticSlide
from PIL import Image

from .conftest import SlideFolder

TILE = 256
STEP = 300


# -- curves -------------------------------------------------------------------


def mann_whitney(scores: Sequence[float], labels: Sequence[int]) -> float:
    """The ROC AUC by its definition: the chance a positive outscores a negative, ties counting half."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    negatives = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives))
    return wins / (len(positives) * len(negatives))


def test_roc_and_pr_of_a_small_example_computed_by_hand() -> None:
    scores, labels = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
    fpr, tpr, thresholds = roc_curve(scores, labels)
    # descending: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-)
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert thresholds.tolist() == [np.inf, 0.8, 0.4, 0.35, 0.1]
    assert area_under_curve(fpr, tpr) == pytest.approx(0.75)
    recall, precision, _ = pr_curve(scores, labels)
    assert recall.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert precision.tolist() == pytest.approx([1.0, 1.0, 0.5, 2 / 3, 0.5])
    assert average_precision(recall, precision) == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)


def test_perfect_separation_reaches_the_top_left_corner() -> None:
    scores, labels = [0.9, 0.8, 0.7, 0.3, 0.2], [1, 1, 1, 0, 0]
    fpr, tpr, _ = roc_curve(scores, labels)
    assert area_under_curve(fpr, tpr) == pytest.approx(1.0)
    assert any(f == 0.0 and t == 1.0 for f, t in zip(fpr, tpr, strict=True))
    recall, precision, _ = pr_curve(scores, labels)
    assert average_precision(recall, precision) == pytest.approx(1.0)
    # the opposite ranking is the worst possible
    fpr, tpr, _ = roc_curve([-s for s in scores], labels)
    assert area_under_curve(fpr, tpr) == pytest.approx(0.0)


def test_tied_scores_make_one_diagonal_step() -> None:
    fpr, tpr, thresholds = roc_curve([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0])
    assert list(zip(fpr.tolist(), tpr.tolist(), strict=True)) == [(0, 0), (0, 0.5), (0.5, 1), (1, 1)]
    assert thresholds.tolist() == [np.inf, 0.9, 0.5, 0.1]
    assert area_under_curve(fpr, tpr) == pytest.approx(0.875)
    fpr, tpr, _ = roc_curve([0.5] * 4, [0, 1, 0, 1])
    assert fpr.tolist() == [0, 1] and tpr.tolist() == [0, 1]
    recall, precision, _ = pr_curve([0.5] * 4, [0, 1, 0, 1])
    assert average_precision(recall, precision) == pytest.approx(0.5)


def test_auc_equals_the_pairwise_definition_with_many_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = (rng.integers(0, 6, size=30) / 5).tolist()  # few distinct values: many ties
        labels = rng.integers(0, 2, size=30).tolist()
        if 0 < sum(labels) < len(labels):
            fpr, tpr, _ = roc_curve(scores, labels)
            assert area_under_curve(fpr, tpr) == pytest.approx(mann_whitney(scores, labels))


def test_one_sided_labels_have_no_curve() -> None:
    with pytest.raises(ValueError, match="positive and one negative"):
        roc_curve([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="positive"):
        pr_curve([0.1, 0.2], [0, 0])


def test_confusion_matrix_counts_true_rows_and_predicted_columns() -> None:
    matrix = confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


# -- figures of slides ----------------------------------------------------------


def slide_rows(
    slide_id: str, label: int, probabilities: Sequence[float], attentions: Sequence[float], *, columns: int = 8
) -> list[dict[str, Any]]:
    """Tile rows on a grid of STEP-spaced TILE-sized tiles, left to right, top to bottom."""
    rows = []
    for index, attention in enumerate(attentions):
        x, y = STEP * (index % columns), STEP * (index // columns)
        row: dict[str, Any] = {
            "slide_id": slide_id,
            "label": label,
            "prediction": int(np.argmax(probabilities)),
            "probability": max(probabilities),
            "tile_x": x,
            "tile_y": y,
            "right": x + TILE,
            "bottom": y + TILE,
            "attention": attention,
        }
        row.update({f"prob_{c}": p for c, p in enumerate(probabilities)})
        rows.append(row)
    return rows


def as_read_from_csv(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The rows as csv.DictReader gives them back: every value a string."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    buffer.seek(0)
    return list(csv.DictReader(buffer))


def read_png(path: Path) -> np.ndarray[Any, np.dtype[np.uint8]]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 100 and image.height > 100
        return np.asarray(image.convert("RGB"))


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def binary_run(
    small_slide: SyntheticSlide, slide_folder: SlideFolder, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[Path], list[float]]:
    """Figures of four slides, read back from CSV strings; the small slide has 48 tiles of shuffled attention."""
    folder = tmp_path_factory.mktemp("figures")
    attentions = (np.random.default_rng(5).permutation(48) / 47).tolist()
    others = {s.path.stem: s for s in slide_folder.slides}
    rows = slide_rows("small", 1, [0.1, 0.9], attentions)
    rows += slide_rows("slide_00", 1, [0.3, 0.7], [0.2, 0.5, 0.3], columns=4)
    rows += slide_rows("slide_01", 0, [0.8, 0.2], [0.6, 0.1], columns=4)
    rows += slide_rows("slide_02", 0, [0.2, 0.8], [0.4, 0.4, 0.9], columns=4)
    slides = {"small": SlideRecord("small", small_slide.path, "1")}
    slides.update({name: SlideRecord(name, others[name].path) for name in ("slide_00", "slide_01", "slide_02")})
    written = write_figures(
        folder, as_read_from_csv(rows), slides, num_classes=2, tile_size=TILE, tile_level=0, backend="tifffile"
    )
    return folder, written, attentions


def test_binary_run_writes_every_figure(binary_run: tuple[Path, list[Path], list[float]]) -> None:
    folder, written, _ = binary_run
    expected = {
        folder / name for name in ("test_roc_curve.png", "test_roc_curve.csv", "test_pr_curve.png", "test_pr_curve.csv")
    }
    expected.add(folder / "test_confusion_matrix.png")
    for slide_id in ("small", "slide_00", "slide_01", "slide_02"):
        expected |= {folder / "attention" / f"{slide_id}_{kind}.png" for kind in ("top", "bottom", "heatmap")}
    assert set(written) == expected
    for path in expected:
        assert path.is_file()
        if path.suffix == ".png":
            read_png(path)


def test_binary_curves_are_per_slide(binary_run: tuple[Path, list[Path], list[float]]) -> None:
    folder = binary_run[0]
    columns, rows = read_csv(folder / "test_roc_curve.csv")
    assert columns == ["class", "threshold", "fpr", "tpr"]
    # four slides with four distinct scores (not 56 tiles): five points, all of class 1
    assert len(rows) == 5 and {r["class"] for r in rows} == {"1"}
    fpr = np.array([float(r["fpr"]) for r in rows])
    tpr = np.array([float(r["tpr"]) for r in rows])
    # positives score 0.9, 0.7; negatives 0.2, 0.8: three of four pairs ranked right
    assert area_under_curve(fpr, tpr) == pytest.approx(0.75)
    columns, rows = read_csv(folder / "test_pr_curve.csv")
    assert columns == ["class", "threshold", "recall", "precision"]
    assert len(rows) == 5 and float(rows[-1]["recall"]) == 1.0


def test_top_and_bottom_grids_show_the_extreme_tiles_in_order(
    binary_run: tuple[Path, list[Path], list[float]], small_slide: SyntheticSlide
) -> None:
    folder, _, attentions = binary_run
    ranked = np.argsort(attentions)[::-1]
    top = read_png(folder / "attention" / "small_top.png")[TITLE_HEIGHT:]  # below the title band
    bottom = read_png(folder / "attention" / "small_bottom.png")[TITLE_HEIGHT:]
    # 12 tiles in 4 columns of 256-pixel cells (the captions are narrower than a tile)
    assert top.shape[1] == GRID_MARGIN + 4 * (TILE + GRID_MARGIN)
    with open_slide(small_slide.path, "tifffile") as reader:
        for grid, order in ((top, ranked), (bottom, ranked[::-1])):
            for cell in (0, 1, 11):
                index = int(order[cell])
                expected = reader.read_region((STEP * (index % 8), STEP * (index // 8)), 0, (TILE, TILE))
                left, top_edge = grid_cell_origin(cell, (TILE, TILE), 4)
                assert np.array_equal(grid[top_edge : top_edge + TILE, left : left + TILE], expected), (cell, index)


def test_heatmap_tints_tiles_by_attention_and_leaves_the_rest(
    binary_run: tuple[Path, list[Path], list[float]], small_slide: SyntheticSlide
) -> None:
    from matplotlib import colormaps

    folder, _, attentions = binary_run
    heatmap = read_png(folder / "attention" / "small_heatmap.png").astype(np.float64)[TITLE_HEIGHT:]
    with open_slide(small_slide.path, "tifffile") as reader:
        thumbnail = reader.thumbnail((512, 512)).astype(np.float64)
    height, width = thumbnail.shape[:2]
    assert heatmap.shape[0] == height and heatmap.shape[1] > width  # a colour bar to the right
    picture = heatmap[:, :width]
    scale = width / small_slide.width

    covered = np.zeros((height, width), dtype=bool)
    for index in range(48):
        x, y = STEP * (index % 8), STEP * (index // 8)
        covered[
            int(y * scale) : int(np.ceil((y + TILE) * scale)), int(x * scale) : int(np.ceil((x + TILE) * scale))
        ] = True
    # nothing outside the tiles changes, and a good part of the picture is outside them
    assert (~covered).mean() > 0.15
    assert np.array_equal(picture[~covered], thumbnail[~covered])

    def tint(index: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The colour blended over a tile, recovered from heatmap = (1 - a) thumbnail + a colour."""
        x, y = STEP * (index % 8), STEP * (index // 8)
        inner = np.s_[
            int(y * scale) + 2 : int((y + TILE) * scale) - 2, int(x * scale) + 2 : int((x + TILE) * scale) - 2
        ]
        blended = (picture[inner] - (1 - HEATMAP_ALPHA) * thumbnail[inner]) / HEATMAP_ALPHA
        return np.asarray(blended.reshape(-1, 3).mean(axis=0))

    colormap = colormaps[HEATMAP_COLORMAP]
    highest, lowest = int(np.argmax(attentions)), int(np.argmin(attentions))
    assert np.allclose(tint(highest), np.array(colormap(1.0)[:3]) * 255, atol=3)
    assert np.allclose(tint(lowest), np.array(colormap(0.0)[:3]) * 255, atol=3)
    assert np.abs(tint(highest) - tint(lowest)).max() > 100


# -- tiles datasets, multiclass, failures ---------------------------------------


def tile_dataset_rows(root: Path, num_classes: int, labels: Sequence[int]) -> list[dict[str, Any]]:
    """Pre-cut 32-pixel tiles of solid colours, five per slide, no slide coordinates and no right/bottom."""
    rows = []
    for slide, label in enumerate(labels):
        probabilities = np.full(num_classes, 0.1)
        probabilities[label] += 0.3 + 0.05 * slide  # every slide predicted right, with distinct scores
        probabilities /= probabilities.sum()
        for tile in range(5):
            name = f"s{slide}/tile_{tile}.png"
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 32), (40 * tile, 200 - 30 * tile, 20 * slide)).save(root / name)
            row: dict[str, Any] = {
                "slide_id": f"s{slide}",
                "label": label,
                "prediction": label,
                "probability": float(probabilities.max()),
                "tile_x": -1,
                "tile_y": -1,
                "attention": 0.1 + 0.2 * ((tile * 3) % 5),  # tile 0 lowest, tile 3 highest
                "image": name,
            }
            row.update({f"prob_{c}": float(p) for c, p in enumerate(probabilities)})
            rows.append(row)
    return rows


def test_multiclass_tiles_dataset(tmp_path: Path) -> None:
    root, out = tmp_path / "tiles", tmp_path / "out"
    rows = tile_dataset_rows(root, 3, [0, 1, 2, 0, 1, 2])
    written = write_figures(out, rows, {}, num_classes=3, tile_size=32, tile_level=0, top_k=4, tiles_root=root)
    columns, curve = read_csv(out / "test_roc_curve.csv")
    assert columns == ["class", "threshold", "fpr", "tpr"]
    assert {r["class"] for r in curve} == {"0", "1", "2"}
    for cls in "012":
        points = [(float(r["fpr"]), float(r["tpr"])) for r in curve if r["class"] == cls]
        assert points[0] == (0.0, 0.0) and points[-1] == (1.0, 1.0)
        assert (0.0, 1.0) in points  # every slide's own class scores highest
    _, pr = read_csv(out / "test_pr_curve.csv")
    assert {r["class"] for r in pr} == {"0", "1", "2"}
    read_png(out / "test_confusion_matrix.png")
    attention = out / "attention"
    assert sorted(p.name for p in attention.iterdir()) == sorted(
        f"s{s}_{kind}.png" for s in range(6) for kind in ("top", "bottom")
    )
    assert not any(p.name.endswith("_heatmap.png") for p in written)
    with Image.open(attention / "s4_top.png") as image:
        top = np.asarray(image.convert("RGB"))[TITLE_HEIGHT:]
    with Image.open(attention / "s4_bottom.png") as image:
        bottom = np.asarray(image.convert("RGB"))[TITLE_HEIGHT:]
    assert top[GRID_MARGIN : GRID_MARGIN + 32, GRID_MARGIN : GRID_MARGIN + 32].reshape(-1, 3).tolist() == [
        [120, 110, 80]
    ] * (32 * 32)  # tile 3 of slide 4
    assert bottom[GRID_MARGIN + 16, GRID_MARGIN + 16].tolist() == [0, 200, 80]  # tile 0 of slide 4


def test_a_class_without_slides_is_skipped(tmp_path: Path) -> None:
    rows = tile_dataset_rows(tmp_path, 3, [0, 1, 0, 1])
    write_figures(tmp_path / "out", rows, {}, num_classes=3, tile_size=32, tile_level=0, tiles_root=tmp_path)
    for name in ("test_roc_curve.csv", "test_pr_curve.csv"):
        _, curve = read_csv(tmp_path / "out" / name)
        assert {r["class"] for r in curve} == {"0", "1"}
    read_png(tmp_path / "out" / "test_roc_curve.png")


def test_a_missing_slide_is_one_warning_and_the_rest_is_written(
    small_slide: SyntheticSlide, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = slide_rows("gone", 0, [0.6, 0.4], [0.3, 0.7]) + slide_rows("small", 1, [0.2, 0.8], [0.1, 0.9, 0.5])
    slides = {"gone": SlideRecord("gone", tmp_path / "gone.svs"), "small": SlideRecord("small", small_slide.path)}
    written = write_figures(tmp_path, rows, slides, num_classes=2, tile_size=TILE, tile_level=0, top_k=2)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("himl: warning: attention figures of slide gone: ")
    assert "gone.svs" in warnings[0]
    names = {p.name for p in written}
    assert {"small_top.png", "small_bottom.png", "small_heatmap.png", "test_roc_curve.png"} <= names
    assert not any(name.startswith("gone_") for name in names)
    assert not list((tmp_path / "attention").glob("gone_*"))
    assert read_png(tmp_path / "attention" / "small_top.png").shape[1] == GRID_MARGIN + 2 * (TILE + GRID_MARGIN)


def test_a_cap_on_attention_figures_shares_them_over_classes_sure_and_unsure() -> None:
    scores = {f"n{i}": SlideScore(0, 0, (1 - i / 10, i / 10)) for i in range(6)}
    scores |= {f"p{i}": SlideScore(1, 1, (1 - (0.4 + i / 10), 0.4 + i / 10)) for i in range(3)}
    assert slides_to_show(scores, 0) == set(scores) == slides_to_show(scores, 9)
    # per class: the surest, then the least sure
    assert slides_to_show(scores, 4) == {"n0", "n5", "p2", "p0"}
    assert slides_to_show(scores, 7) == {"n0", "n5", "n1", "n4", "p2", "p0", "p1"}


def test_heatmaps_share_one_colour_scale_unless_asked_per_slide() -> None:
    from himl_cpath.mil_figures import attention_heatmap
    from matplotlib import colormaps

    white = np.full((40, 40, 3), 255, dtype=np.uint8)
    boxes = [(0.0, 0.0, 20.0, 20.0), (20.0, 20.0, 40.0, 40.0)]
    colormap = colormaps[HEATMAP_COLORMAP]

    def tint(image: Image.Image, x: int, y: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        pixel = np.asarray(image.convert("RGB"), dtype=np.float64)[y, x]
        return np.asarray((pixel - (1 - HEATMAP_ALPHA) * 255) / HEATMAP_ALPHA)

    # a cool slide (attention 0.1 and 0.2) on the test set's scale 0..1 stays near the cool end
    shared = attention_heatmap(white, (1.0, 1.0), boxes, [0.1, 0.2], value_range=(0.0, 1.0))
    assert np.allclose(tint(shared, 10, 10), np.array(colormap(0.1)[:3]) * 255, atol=3)
    assert np.allclose(tint(shared, 30, 30), np.array(colormap(0.2)[:3]) * 255, atol=3)
    # on its own range the same slide spans the whole colour map
    own = attention_heatmap(white, (1.0, 1.0), boxes, [0.1, 0.2])
    assert np.allclose(tint(own, 30, 30), np.array(colormap(1.0)[:3]) * 255, atol=3)


def test_attention_figures_are_titled_with_the_slide_label_and_prediction() -> None:
    from himl_cpath.mil_figures import slide_title, titled

    title = slide_title("TCGA-01", SlideScore(label=1, prediction=0, probabilities=(0.7, 0.3)))
    assert title == "TCGA-01  |  true label 1  |  predicted 0 (p=0.70)"
    image = titled(Image.new("RGB", (300, 20), (255, 0, 0)), title)
    pixels = np.asarray(image)
    assert image.size == (300, 20 + TITLE_HEIGHT)
    assert (pixels[:TITLE_HEIGHT] < 128).any()  # text in the band
    assert (pixels[TITLE_HEIGHT:] == [255, 0, 0]).all()  # the figure itself untouched below it
