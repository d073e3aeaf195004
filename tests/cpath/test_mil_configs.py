"""The named DeepMIL configurations (TCGA-CRCk and PANDA) on small synthetic copies of the two datasets.

Nothing is downloaded: the ImageNet configurations get a local resnet18
state dict through ``--encoder_weights``, the SSL ones a Lightning-style
checkpoint, and the model hub is asked only to show that, offline, it fails
in one line.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from himl_cpath.conventions import crck_bags
from himl_cpath.deepmil_data import class_indices, split_slides
from himl_cpath.mil_configs import (
    PandaImageNetMIL,
    PandaSSLMIL,
    PandaTransformerMIL,
    TcgaCrckImageNetMIL,
    TcgaCrckSSLMIL,
    TcgaCrckTransformerMIL,
)
from himl_cpath.plugin import MIL_CONFIGS
from himl_cpath.synthetic import write_synthetic_slide
from PIL import Image

from himl_kernel.errors import HimlError
from himl_kernel.runstore import RunStore, StoredRun

from ..conftest import error_lines, run_himl

TILE = 64
CRCK_TRAIN, CRCK_TEST = 16, 4  # slides per split, half of them MSIMUT
TILES_PER_SLIDE = 4
#: Settings that keep a run short: no sanity validation, few tiles, small batches.
QUICK = ("--pl_num_sanity_val_steps", "0", "--max_bag_size", "3", "--batch_size", "4")


@dataclass(frozen=True)
class Crck:
    """The folder, the label ("1": MSIMUT, "0": MSS) of each slide, and which slides are in CRC_DX_TEST."""

    folder: Path
    labels: dict[str, str]
    test_slides: set[str]


def tcga_barcode(index: int) -> str:
    """A distinct TCGA slide barcode per index (``TCGA-XX-XXXX-01Z-00-DX1``)."""
    return f"TCGA-{'AB'[index % 2]}{index % 10}-{index:04d}-01Z-00-DX1"


def crck_tile(positive: bool, rng: np.random.Generator) -> Image.Image:
    """Pink noise; an MSIMUT tile also carries a dark blue square."""
    pixels = np.clip(rng.normal((214, 150, 190), 18, size=(TILE, TILE, 3)), 0, 255).astype(np.uint8)
    if positive:
        x, y = rng.integers(0, TILE // 2, size=2)
        pixels[y : y + TILE // 2, x : x + TILE // 2] = (40, 40, 120)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def crck(tmp_path_factory: pytest.TempPathFactory) -> Crck:
    """A TCGA-CRCk folder: CRC_DX_TRAIN and CRC_DX_TEST, each with MSIMUT and MSS tiles named by slide barcode."""
    folder = tmp_path_factory.mktemp("crck")
    rng = np.random.default_rng(0)
    labels: dict[str, str] = {}
    test_slides: set[str] = set()
    index = 0
    for split, count in (("CRC_DX_TRAIN", CRCK_TRAIN), ("CRC_DX_TEST", CRCK_TEST)):
        for number in range(count):
            class_name = "MSIMUT" if number % 2 else "MSS"
            barcode = tcga_barcode(index)
            index += 1
            (folder / split / class_name).mkdir(parents=True, exist_ok=True)
            for tile in range(TILES_PER_SLIDE):
                name = f"blk-{'ABCDEFGHIJKL'[tile]}{index:011d}-{barcode}.png"
                crck_tile(class_name == "MSIMUT", rng).save(folder / split / class_name / name)
            labels[barcode] = "1" if class_name == "MSIMUT" else "0"
            if split == "CRC_DX_TEST":
                test_slides.add(barcode)
    return Crck(folder, labels, test_slides)


def resnet18_backbone() -> torch.nn.Module:
    import timm

    torch.manual_seed(5)
    return timm.create_model("resnet18", pretrained=False, num_classes=0)


@pytest.fixture(scope="module")
def imagenet_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet18 state dict as timm writes it (our stand-in for the hub's ImageNet weights)."""
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(resnet18_backbone().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def ssl_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-supervised Lightning checkpoint: the encoder under ``encoder.``, next to a projection head."""
    state = {f"encoder.{key}": value for key, value in resnet18_backbone().state_dict().items()}
    state["projection.0.weight"] = torch.zeros(128, 512)
    state["projection.0.bias"] = torch.zeros(128)
    path = tmp_path_factory.mktemp("ssl") / "simclr.ckpt"
    torch.save({"state_dict": state, "epoch": 9, "global_step": 100}, path)
    return path


def env_of(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"HIML_HOME": str(tmp_path / "home"), "HIML_CACHE": str(tmp_path / "cache"), **extra}


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def only_run(home: Path, experiment: str) -> tuple[RunStore, StoredRun]:
    store = RunStore(home=home)
    runs = [r for r in store.list_runs(experiment) if not r.parent_run_id]
    assert len(runs) == 1, runs
    return store, runs[0]


def by_slide(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    slides: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        slides.setdefault(row["slide_id"], []).append(row)
    return slides


# -- TCGA-CRCk ------------------------------------------------------------------------------------------------------


def test_crck_imagenet_crossvalidation_tests_the_dataset_test_slides_in_each_fold(
    crck: Crck, imagenet_weights: Path, tmp_path: Path
) -> None:
    result = run_himl(
        "run", "--model", "TcgaCrckImageNetMIL", "--local_datasets", f"[{crck.folder}]",
        "--encoder_weights", str(imagenet_weights), "--crossval_count", "2", "--max_epochs", "2", *QUICK,
        cwd=tmp_path, env=env_of(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    store, parent = only_run(tmp_path / "home", "TcgaCrckImageNetMIL")
    assert parent.status == "FINISHED"
    children = store.children(parent.run_id)
    assert sorted(c.params["crossval_index"] for c in children) == ["0", "1"]
    assert all(c.status == "FINISHED" for c in children), [c.status for c in children]
    assert all("val/auroc" in c.metrics and "test/auroc" in c.metrics for c in children)
    # the tiles were encoded once, by the first fold; the second read them from the cache
    assert len(re.findall(rf"encoded {CRCK_TRAIN + CRCK_TEST} of {CRCK_TRAIN + CRCK_TEST} slides", result.stdout)) == 1
    assert f"encoded 0 of {CRCK_TRAIN + CRCK_TEST} slides" in result.stdout

    for child in children:
        outputs = store.folders(child)[0]
        rows = read_rows(outputs / "test_output.csv")
        slides = by_slide(rows)
        assert set(slides) == crck.test_slides  # CRC_DX_TEST is the test split, in every fold
        for slide_id, tiles in slides.items():
            assert len(tiles) == TILES_PER_SLIDE  # inference sees every tile
            assert {t["label"] for t in tiles} == {crck.labels[slide_id]}
            assert sum(float(t["attention"]) for t in tiles) == pytest.approx(1.0, abs=1e-5)
            assert all(t["tile_x"] == "-1" == t["tile_y"] and t["right"] == "" for t in tiles)
            for kind in ("top", "bottom"):
                assert (outputs / "attention" / f"{slide_id}_{kind}.png").is_file(), (slide_id, kind)
            assert not (outputs / "attention" / f"{slide_id}_heatmap.png").exists()  # tiles without a slide
        matrix = read_rows(outputs / "test_confusion_matrix.csv")
        assert sum(int(v) for row in matrix for k, v in row.items() if k != "true\\predicted") == CRCK_TEST
