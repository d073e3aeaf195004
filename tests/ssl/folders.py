"""Tiny image folders the SSL tests train on: a TCGA-CRCk layout and a labelled image folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: The settings of a tiny SSL run: 32-pixel tiles, a CIFAR-stem resnet18, batches of 8, one epoch.
TINY = (
    "--ssl_encoder", "cifar_resnet18", "--image_size", "32", "--ssl_training_batch_size", "8",
    "--linear_head_batch_size", "8", "--max_epochs", "1", "--num_workers", "0", "--hidden_dim", "32",
    "--pl_num_sanity_val_steps", "0",
)  # fmt: skip


def crck_folder(folder: Path) -> Path:
    """CRC_DX_TRAIN and CRC_DX_TEST with random 32-pixel tiles; MSIMUT ones carry a dark blue square."""
    rng = np.random.default_rng(0)
    slide = 0
    for split, count in (("CRC_DX_TRAIN", 24), ("CRC_DX_TEST", 8)):
        for class_name in ("MSIMUT", "MSS"):
            target = folder / split / class_name
            target.mkdir(parents=True)
            for index in range(count // 2):  # two tiles per slide, each slide of one class
                pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                if class_name == "MSIMUT":
                    pixels[:16, :16] = (40, 40, 120)
                Image.fromarray(pixels).save(target / f"TCGA-AB-{slide + index // 2:04d}-01Z-00-DX1_{index}.png")
            slide += count
    return folder


def labelled_folder(folder: Path, train: int = 16, val: int = 7) -> Path:
    """``train/`` and ``val/`` with classes ``a`` (0) and ``b`` (1): b's images are brighter on average."""
    rng = np.random.default_rng(1)
    for split, count in (("train", train), ("val", val)):
        for index in range(count):
            class_name = "ab"[index % 2]
            target = folder / split / class_name
            target.mkdir(parents=True, exist_ok=True)
            low = 0 if class_name == "a" else 60
            pixels = rng.integers(low, low + 196, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(target / f"{index:03d}.png")
    return folder


def himl_env(root: Path) -> dict[str, str]:
    return {"HIML_HOME": str(root / "home"), "HIML_CACHE": str(root / "cache")}
