"""Synthetic X-ray-like pairs with known structure: an opacity in the left or right lung, and a report saying so."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

#: The reports of the two classes. Radiological convention: the patient's left is the image's right.
REPORTS = {"left": "opacity in the left lung", "right": "opacity in the right lung", "none": "no opacity"}


def opacity_image(side: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A noisy dark square with a bright blob in the patient's ``side`` lung (the image's opposite half), or none."""
    if side not in REPORTS:
        raise ValueError(f"side should be one of {', '.join(REPORTS)}, got {side!r}")
    image = rng.normal(60, 15, (size, size))
    if side == "none":
        return np.clip(image, 0, 255).astype(np.uint8)
    rows, cols = np.mgrid[0:size, 0:size]
    centre_col = rng.uniform(0.6, 0.8) * size if side == "left" else rng.uniform(0.2, 0.4) * size
    centre_row = rng.uniform(0.3, 0.7) * size
    radius = rng.uniform(0.1, 0.16) * size
    blob = np.exp(-((rows - centre_row) ** 2 + (cols - centre_col) ** 2) / (2 * radius**2))
    pixels: np.ndarray = np.clip(image + 170 * blob, 0, 255).astype(np.uint8)
    return pixels


def write_left_right_pairs(folder: Path, count: int, size: int = 128, seed: int = 0, with_normal: bool = False) -> Path:
    """Write ``count`` PNGs and ``pairs.csv`` (columns image, report, side); return the table.

    Sides alternate left, right (and, ``with_normal``, images without opacity). The clear images make the
    task localisable: without them an empty image-left half says "left" as surely as the opacity does.
    """
    cycle = ["left", "right", "none"] if with_normal else ["left", "right"]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    table = folder / "pairs.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "report", "side"])
        for index in range(count):
            side = cycle[index % len(cycle)]
            name = f"{side}_{index:04d}.png"
            Image.fromarray(opacity_image(side, size, rng), mode="L").save(folder / name)
            writer.writerow([name, REPORTS[side], side])
    return table
