"""PANDA and TCGA-CRCk folder layouts work as they come."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import tifffile
from himl_cpath.conventions import crck_slide_id, crck_tiles_table
from himl_cpath.datasets import TilesDataset
from himl_cpath.slide_table import load_slides
from himl_cpath.synthetic import write_synthetic_slide
from himl_cpath.tiles_dataset import tile_slides
from himl_cpath.tiling import TilingOptions
from PIL import Image


def make_panda(folder: Path) -> Path:
    (folder / "train_images").mkdir(parents=True)
    (folder / "train_label_masks").mkdir()
    for index, image_id in enumerate(("0005f7aaab2800f6170c399693a96917", "000920ad0b612851f8e01bcc880d9b3d")):
        write_synthetic_slide(folder / "train_images" / f"{image_id}.tiff", 1600, 1200, seed=40 + index)
    # PANDA masks: label values in the first channel; here only the left half is marked
    labels = np.zeros((1200 // 4, 1600 // 4, 3), dtype=np.uint8)
    labels[:, :200, 0] = 3
    tifffile.imwrite(
        folder / "train_label_masks" / "0005f7aaab2800f6170c399693a96917_mask.tiff",
        labels,
        tile=(128, 128),
        compression="deflate",
        photometric="rgb",
        metadata=None,
    )
    (folder / "train.csv").write_text(
        "image_id,data_provider,isup_grade,gleason_score\n"
        "0005f7aaab2800f6170c399693a96917,karolinska,0,0+0\n"
        "000920ad0b612851f8e01bcc880d9b3d,karolinska,4,4+4\n",
        encoding="utf-8",
    )
    return folder


def test_a_panda_folder_is_read_with_grades_and_masks(tmp_path: Path) -> None:
    folder = make_panda(tmp_path / "PANDA")
    slides = load_slides(folder)
    assert [(s.slide_id[:6], s.label, s.mask is not None) for s in slides] == [
        ("0005f7", "0", True),
        ("000920", "4", False),
    ]
    report = tile_slides(slides, tmp_path / "tiles", TilingOptions(tile_size=128, min_occupancy=0.5))
    assert not report.failed
    with (tmp_path / "tiles" / "dataset.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    masked = [r for r in rows if r["slide_id"].startswith("0005f7")]
    assert masked and all(int(r["tile_x"]) + 128 <= 800 + 64 for r in masked)  # the mask's left half only
    assert {r["label"] for r in rows} == {"0", "4"}


def test_a_tcga_crck_split_becomes_a_tiles_dataset(tmp_path: Path) -> None:
    names = {
        "MSIMUT": ["blk-AAAVYLTSEHPT-TCGA-AA-3555-01Z-00-DX1.png", "blk-AACHHCHLDMWL-TCGA-AA-3555-01Z-00-DX1.png"],
        "MSS": ["blk-AACCGLYSMRPY-TCGA-A6-2671-01Z-00-DX1.png"],
    }
    for class_name, files in names.items():
        (tmp_path / "CRC_DX_TRAIN" / class_name).mkdir(parents=True)
        for name in files:
            Image.new("RGB", (224, 224), (200, 120, 180)).save(tmp_path / "CRC_DX_TRAIN" / class_name / name)
    table = crck_tiles_table(tmp_path, "train")
    dataset = TilesDataset(table.parent)
    items = [dataset[i] for i in range(len(dataset))]
    assert [(i["slide_id"], i["label"]) for i in items] == [
        ("TCGA-AA-3555-01Z-00-DX1", "1"),
        ("TCGA-AA-3555-01Z-00-DX1", "1"),
        ("TCGA-A6-2671-01Z-00-DX1", "0"),
    ]
    assert items[0]["image"].shape == (3, 224, 224)
    assert crck_slide_id("no-barcode.png") == "no-barcode"
