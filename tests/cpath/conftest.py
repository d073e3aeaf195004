"""Slides for the pathology tests, written once per session with tifffile (nothing is downloaded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from himl_cpath.synthetic import SyntheticSlide, write_synthetic_slide

SMALL = (2400, 1800)


@dataclass(frozen=True)
class SlideFolder:
    """Twelve small slides (every third positive), one of them corrupt, and a dataset.csv over them."""

    folder: Path
    slides: list[SyntheticSlide]
    corrupt: Path
    table: Path


def write_corrupt_slide(path: Path, source: Path) -> Path:
    """The first few kilobytes of a real slide: a TIFF header whose tiles are missing."""
    path.write_bytes(source.read_bytes()[:6000])
    return path


@pytest.fixture(scope="session")
def big_slide(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSlide:
    """A 20,000 x 20,000 Aperio-style slide with three tissue regions and signal."""
    folder = tmp_path_factory.mktemp("big")
    return write_synthetic_slide(folder / "big.svs", 20_000, 20_000, seed=3, positive=True)


@pytest.fixture(scope="session")
def small_slide(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSlide:
    folder = tmp_path_factory.mktemp("small")
    return write_synthetic_slide(folder / "small.svs", *SMALL, seed=1, positive=True)


@pytest.fixture(scope="session")
def slide_folder(tmp_path_factory: pytest.TempPathFactory) -> SlideFolder:
    folder = tmp_path_factory.mktemp("slides")
    slides = [
        write_synthetic_slide(folder / f"slide_{index:02d}.svs", 1600, 1200, seed=10 + index, positive=index % 3 == 0)
        for index in range(11)
    ]
    corrupt = write_corrupt_slide(folder / "slide_11.svs", slides[0].path)
    lines = ["image,slide_id,label"]
    lines += [f"{s.path.name},{s.path.stem},{s.label}" for s in slides]
    lines.append(f"{corrupt.name},{corrupt.stem},0")
    table = folder / "dataset.csv"
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return SlideFolder(folder, slides, corrupt, table)


MIL_SIZE = (3200, 2400)


@dataclass(frozen=True)
class MilSlides:
    """Forty slides, every second one positive (with signal squares), and their dataset.csv."""

    slides: dict[str, SyntheticSlide]
    table: Path


@pytest.fixture(scope="session")
def mil_slides(tmp_path_factory: pytest.TempPathFactory) -> MilSlides:
    folder = tmp_path_factory.mktemp("mil")
    slides = {}
    lines = ["image,slide_id,label"]
    for index in range(40):
        slide = write_synthetic_slide(
            folder / f"mil_{index:02d}.svs", *MIL_SIZE, seed=200 + index, positive=index % 2 == 1
        )
        slides[slide.path.stem] = slide
        lines.append(f"{slide.path.name},{slide.path.stem},{slide.label}")
    table = folder / "dataset.csv"
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return MilSlides(slides, table)
