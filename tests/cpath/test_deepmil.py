"""DeepMIL: splits and batches of bags, the container through ``himl run``, and the 40-slide check."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import torch
from himl_cpath.deepmil import one_per_slide
from himl_cpath.deepmil_data import ImageBags, LabelledSlide, class_indices, collate_bags, split_slides
from himl_cpath.slide_table import SlideRecord, tile_bags_from_csv
from himl_cpath.synthetic import SyntheticSlide
from himl_cpath.tiling import TilingOptions

from himl_kernel.errors import HimlError
from himl_kernel.runstore import RunStore

from ..conftest import run_himl
from .conftest import MilSlides, SlideFolder


def labelled(count: int, classes: int = 2) -> list[LabelledSlide]:
    return [
        LabelledSlide(SlideRecord(f"s{i:02d}", Path(f"s{i:02d}.svs"), str(i % classes)), i % classes)
        for i in range(count)
    ]


def test_bags_are_padded_to_the_longest_with_a_mask() -> None:
    items = [
        {
            "slide_id": "a",
            "label": 1,
            "features": torch.ones(3, 4),
            "tile_x": torch.arange(3),
            "tile_y": torch.arange(3),
        },
        {
            "slide_id": "b",
            "label": 0,
            "features": torch.ones(1, 4),
            "tile_x": torch.arange(1),
            "tile_y": torch.arange(1),
        },
    ]
    batch = collate_bags(items)
    assert batch["features"].shape == (2, 3, 4) and batch["slide_id"] == ["a", "b"]
    assert batch["mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["features"][1, 1:].abs().sum() == 0 and batch["label"].tolist() == [1, 0]


def test_splits_keep_the_class_balance_and_honour_a_split_column() -> None:
    slides = labelled(40)
    splits = split_slides(slides, val_fraction=0.2, test_fraction=0.2, seed=0, fixed={"s00": "test"})
    ids = [[s.record.slide_id for s in splits.of(name)] for name in ("train", "val", "test")]
    assert sorted(i for part in ids for i in part) == sorted(s.record.slide_id for s in slides)
    assert ids[2] == ["s00"]  # a split the column fills takes no more slides by its fraction
    labels = [s.label for s in splits.val]
    assert labels.count(0) == labels.count(1) == 4
    unfixed = split_slides(slides, val_fraction=0.2, test_fraction=0.2, seed=0)
    for name in ("val", "test"):
        labels = [s.label for s in unfixed.of(name)]
        assert labels.count(0) == labels.count(1) == 4, name
    folds = [
        split_slides(slides, val_fraction=0.2, test_fraction=0.2, seed=0, crossval_count=4, crossval_index=i)
        for i in range(4)
    ]
    assert all([s.record.slide_id for s in f.test] == [s.record.slide_id for s in folds[0].test] for f in folds)
    val_ids = [s.record.slide_id for f in folds for s in f.val]
    assert len(val_ids) == len(set(val_ids)) == 32  # every non-test slide validates exactly once


def test_bad_labels_and_too_few_slides_fail_in_one_line() -> None:
    with pytest.raises(HimlError, match="label 'tumour' is not a class index"):
        class_indices([SlideRecord("x", Path("x.svs"), "tumour")], 2)
    with pytest.raises(HimlError, match=r"label 3 is outside 0\.\.1"):
        class_indices([SlideRecord("x", Path("x.svs"), "3")], 2)
    with pytest.raises(HimlError, match="no slides for the val split"):
        split_slides(labelled(2), val_fraction=0.2, test_fraction=0.2, seed=0)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def newest_outputs(home: Path) -> Path:
    runs = RunStore(home=home)
    run = runs.list_runs("DeepMIL", max_results=1)[0]
    return runs.folders(run)[0]


@pytest.mark.slow
def test_multiclass_with_a_tuned_encoder_and_class_weights(slide_folder: SlideFolder, tmp_path: Path) -> None:
    table = tmp_path / "dataset.csv"
    lines = ["image,slide_id,label"] + [f"{s.path},{s.path.stem},{i % 3}" for i, s in enumerate(slide_folder.slides)]
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {"HIML_HOME": str(tmp_path / "home"), "HIML_CACHE": str(tmp_path / "cache")}
    result = run_himl(
        "run", "--model", "DeepMIL", "--slides_csv", str(table), "--num_classes", "3",
        "--class_weights", "[1.0, 2.0, 1.0]", "--tune_encoder", "--pooling", "gated_attention",
        "--max_bag_size", "3", "--max_bag_size_inference", "3", "--max_epochs", "1", "--batch_size", "2",
        "--num_workers", "2", "--pl_num_sanity_val_steps", "0", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/auroc=" in result.stdout and "test/qwk=" in result.stdout
    outputs = newest_outputs(tmp_path / "home")
    rows = read_rows(outputs / "test_output.csv")
    assert {"slide_id", "label", "prediction", "probability", "prob_2", "tile_x", "tile_y", "attention"} <= set(rows[0])
    for slide_id in {r["slide_id"] for r in rows}:
        attention = [float(r["attention"]) for r in rows if r["slide_id"] == slide_id]
        assert len(attention) <= 3 and sum(attention) == pytest.approx(1.0, abs=1e-5)
    matrix = read_rows(outputs / "test_confusion_matrix.csv")
    assert len(matrix) == 3 and sum(int(v) for row in matrix for k, v in row.items() if k != "true\\predicted") == len(
        {r["slide_id"] for r in rows}
    )
    assert not (tmp_path / "cache" / "cpath_features").exists()  # nothing is cached for a tuned encoder
    # level-0 tiles: the bottom-right corner is one tile size on
    assert all(int(r["right"]) - int(r["tile_x"]) == 224 == int(r["bottom"]) - int(r["tile_y"]) for r in rows)
    for name in ("test_roc_curve.png", "test_pr_curve.png", "test_roc_curve.csv", "test_confusion_matrix.png"):
        assert (outputs / name).is_file(), name
    for slide_id in {r["slide_id"] for r in rows}:
        for kind in ("top", "bottom", "heatmap"):
            assert (outputs / "attention" / f"{slide_id}_{kind}.png").is_file(), (slide_id, kind)

    # the figures again, from the CSV alone (as for a run whose outputs were downloaded)
    again = run_himl(
        "cpath", "figures", str(outputs / "test_output.csv"), "--slides", str(table), "--output", str(tmp_path / "f"),
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    made = sorted(p.relative_to(tmp_path / "f").as_posix() for p in (tmp_path / "f").rglob("*.png"))
    assert made == sorted(p.relative_to(outputs).as_posix() for p in outputs.rglob("*.png")), made
    wrong = run_himl("cpath", "figures", str(table), cwd=tmp_path, env=env)
    lines = [line for line in wrong.stderr.splitlines() if line.startswith("himl: error:")]
    assert wrong.returncode == 2 and len(lines) == 1 and "is it a DeepMIL test_output.csv?" in lines[0], wrong.stderr


def test_wrong_class_weights_fail_in_one_line(slide_folder: SlideFolder, tmp_path: Path) -> None:
    result = run_himl(
        "run", "--model", "DeepMIL", "--slides_csv", str(slide_folder.table), "--class_weights", "[1, 2, 3]",
        cwd=tmp_path, env={"HIML_HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("himl: error:")]
    assert len(errors) == 1 and "class_weights has 3 values for 2 classes" in errors[0], result.stderr
    assert not (tmp_path / "home").exists()  # refused before any run started


def is_signal_tile(slide: SyntheticSlide, x: int, y: int, size: int = 224) -> bool:
    """Whether the level-0 tile at (x, y) overlaps one of the slide's signal squares."""
    s = slide.signal_size
    return any(x < sx + s and sx < x + size and y < sy + s and sy < y + size for sx, sy in slide.signal_cells)


@pytest.mark.slow
def test_deepmil_on_forty_slides_finds_the_signal(mil_slides: MilSlides, tmp_path: Path) -> None:
    """The issue's check: attention pooling over a frozen (random) resnet18's cached features.

    Test AUROC of at least 0.9 within ten minutes (the subprocess timeout: a
    slower run raises TimeoutExpired), and on every positive test slide the
    tiles with the most attention are signal tiles.
    """
    env = {"HIML_HOME": str(tmp_path / "home"), "HIML_CACHE": str(tmp_path / "cache")}
    args = ["run", "--model", "DeepMIL", "--slides_csv", str(mil_slides.table), "--encoder", "resnet18"]
    result = run_himl(*args, "--pooling", "attention", "--max_epochs", "20", cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    auroc = float(re.search(r"test/auroc=([0-9.]+)", result.stdout).group(1))  # type: ignore[union-attr]
    assert auroc >= 0.9, result.stdout[-2000:]

    rows = read_rows(newest_outputs(tmp_path / "home") / "test_output.csv")
    by_slide: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_slide.setdefault(row["slide_id"], []).append(row)
    assert len(by_slide) == 8
    positives = [s for s in by_slide if mil_slides.slides[s].label == 1]
    assert len(positives) == 4
    for slide_id in positives:
        ranked = sorted(by_slide[slide_id], key=lambda r: -float(r["attention"]))
        top = [is_signal_tile(mil_slides.slides[slide_id], int(r["tile_x"]), int(r["tile_y"])) for r in ranked[:3]]
        assert all(top), f"{slide_id}: top-attention tiles {top}"

    # a second run with another pooling reads the same cache and encodes nothing
    again = run_himl(*args, "--pooling", "mean", "--max_epochs", "1", cwd=tmp_path, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "encoded 0 of 40 slides" in again.stdout
    assert result.stdout.count("himl: encoded") == 1 == again.stdout.count("himl: encoded")  # not again for the test


def test_a_slide_tested_by_two_processes_counts_once() -> None:
    rows = [
        {"_bag": (0, 0, 0), "slide_id": "a", "attention": 0.5},
        {"_bag": (0, 0, 0), "slide_id": "a", "attention": 0.5},
        {"_bag": (0, 0, 1), "slide_id": "b", "attention": 1.0},
        {"_bag": (1, 0, 0), "slide_id": "c", "attention": 1.0},
        {"_bag": (1, 0, 1), "slide_id": "a", "attention": 0.5},  # the sampler's padding: "a" again
        {"_bag": (1, 0, 1), "slide_id": "a", "attention": 0.5},
    ]
    kept = one_per_slide(rows)
    assert [r["slide_id"] for r in kept] == ["a", "a", "b", "c"]
    assert all("_bag" not in r for r in kept)


def write_tiles_table(folder: Path, slides: dict[str, tuple[str, int]], split: dict[str, str] | None = None) -> Path:
    """A tiles dataset.csv: ``slides`` maps slide id -> (label, number of 32-pixel tiles)."""
    from PIL import Image

    lines = ["slide_id,tile_id,image,label,tile_x,tile_y,occupancy" + (",split" if split else "")]
    for slide_id, (label, count) in slides.items():
        for index in range(count):
            name = f"{slide_id}_{index}.png"
            Image.new("RGB", (32, 32), (20 * index, 100, 150)).save(folder / name)
            extra = f",{split.get(slide_id, '')}" if split else ""
            lines.append(f"{slide_id},{slide_id}_{index},{name},{label},{index * 32},0,1.0{extra}")
    table = folder / "dataset.csv"
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return table


def test_tiles_tables_become_one_bag_per_slide_and_bad_ones_fail_in_one_line(tmp_path: Path) -> None:
    table = write_tiles_table(tmp_path, {"s1": ("1", 3), "s2": ("0", 2)}, split={"s2": "test"})
    bags, splits = tile_bags_from_csv(table)
    assert [(b.slide_id, b.label, len(b.images), b.tile_x) for b in bags] == [
        ("s1", "1", 3, (0, 32, 64)),
        ("s2", "0", 2, (0, 32)),
    ]
    assert splits == {"s2": "test"} and all(p.is_file() for b in bags for p in b.paths())
    text = table.read_text(encoding="utf-8").replace("s1_2.png,1,", "s1_2.png,0,")
    table.write_text(text, encoding="utf-8")
    with pytest.raises(HimlError, match="the tiles of slide s1 have different labels: 0, 1"):
        tile_bags_from_csv(table)
    (tmp_path / "bad.csv").write_text("tile_id,image\nt,x.png\n", encoding="utf-8")
    with pytest.raises(HimlError, match="needs the columns label, slide_id"):
        tile_bags_from_csv(tmp_path / "bad.csv")


def test_training_bags_draw_new_tiles_each_time_and_inference_bags_keep_theirs(tmp_path: Path) -> None:
    write_tiles_table(tmp_path, {"s1": ("1", 12)})
    bags, _ = tile_bags_from_csv(tmp_path / "dataset.csv")
    slides = [LabelledSlide(bags[0], 1)]
    options = TilingOptions(32)
    torch.manual_seed(0)
    training = ImageBags(slides, options, max_bag_size=4, resample=True)
    draws = {tuple(training[0]["tile_index"].tolist()) for _ in range(6)}
    assert len(draws) > 1 and all(len(d) == 4 for d in draws)
    inference = ImageBags(slides, options, max_bag_size=4, seed=3)
    fixed = {tuple(inference[0]["tile_index"].tolist()) for _ in range(6)}
    assert len(fixed) == 1
    item = inference[0]
    # each image is the tile file its index names
    first = int(item["tile_index"][0])
    assert int(item["images"][0, 0, 0, 0]) == 20 * first and int(item["tile_x"][0]) == 32 * first


@pytest.mark.slow
def test_deepmil_under_ddp_writes_each_test_slide_once(slide_folder: SlideFolder, tmp_path: Path) -> None:
    """Two CPU processes (gloo); three test slides, so the test sampler hands one slide to both."""
    table = tmp_path / "dataset.csv"
    lines = ["image,slide_id,label"] + [f"{s.path},{s.path.stem},{s.label}" for s in slide_folder.slides]
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {"HIML_HOME": str(tmp_path / "home"), "HIML_CACHE": str(tmp_path / "cache")}
    result = run_himl(
        "run", "--model", "DeepMIL", "--slides_csv", str(table), "--devices", "2", "--strategy", "ddp",
        "--test_fraction", "0.3", "--batch_size", "1", "--max_epochs", "1", "--pl_num_sanity_val_steps", "0",
        "--figures", "false", cwd=tmp_path, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stdout + result.stderr
    outputs = newest_outputs(tmp_path / "home")
    rows = read_rows(outputs / "test_output.csv")
    slides = {r["slide_id"] for r in rows}
    assert len(slides) == 3
    for slide_id in slides:
        attention = [float(r["attention"]) for r in rows if r["slide_id"] == slide_id]
        assert sum(attention) == pytest.approx(1.0, abs=1e-5), slide_id  # 2.0 if the repeat were kept
    matrix = read_rows(outputs / "test_confusion_matrix.csv")
    assert sum(int(v) for row in matrix for k, v in row.items() if k != "true\\predicted") == 3
    assert not (outputs / "test_roc_curve.png").exists()  # --figures false
