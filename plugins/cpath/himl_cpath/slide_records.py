"""What a slide, or a slide given as tile files, is: the records every cpath module passes around.

The types and the grouping of tile rows into bags are here, apart from the
readers of slide lists (:mod:`himl_cpath.slide_table`) and of the public
datasets' layouts (:mod:`himl_cpath.conventions`), which both build them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from himl_kernel.errors import HimlError


@dataclass(frozen=True)
class SlideRecord:
    """One slide to process."""

    slide_id: str
    image: Path
    label: str = ""
    mask: Path | None = None
    #: the patient the slide comes from; slides of one patient always share a split and a fold
    patient_id: str = ""


@dataclass(frozen=True)
class TileFileBag:
    """A slide given as tile images already cut: the files (relative to ``root``) and their level-0 corners.

    Coordinates are -1 where the dataset does not know them (TCGA-CRCk).
    """

    slide_id: str
    label: str
    root: Path
    images: tuple[str, ...]
    tile_x: tuple[int, ...]
    tile_y: tuple[int, ...]
    patient_id: str = ""

    def paths(self) -> list[Path]:
        return [self.root / image for image in self.images]


#: What a DeepMIL bag is made from: a slide file, or tile files already cut.
BagSource = SlideRecord | TileFileBag


def tile_bags_from_rows(
    rows: Sequence[dict[str, str]], root: Path, where: str
) -> tuple[list[TileFileBag], dict[str, str]]:
    """Tile rows grouped into one bag per slide id, and the ``split`` of each slide that has one.

    ``where`` names the rows' source in errors. All tiles of a slide must
    share its label and split.
    """
    grouped: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        grouped.setdefault(row["slide_id"], []).append(row)
    bags, splits = [], {}
    for slide_id, members in grouped.items():
        labels = {m.get("label", "") for m in members}
        if len(labels) > 1:
            raise HimlError(
                f"{where}: the tiles of slide {slide_id} have different labels: {', '.join(sorted(labels))}"
            )
        parts = {(m.get("split") or "").strip().lower() for m in members}
        if len(parts) > 1:
            raise HimlError(
                f"{where}: the tiles of slide {slide_id} lie in different splits: {', '.join(sorted(parts))}"
            )
        if parts != {""}:
            splits[slide_id] = parts.pop()
        patients = {(m.get("patient_id") or "").strip() for m in members}
        if len(patients) > 1:
            raise HimlError(
                f"{where}: the tiles of slide {slide_id} name different patients: {', '.join(sorted(patients))}"
            )
        bags.append(
            TileFileBag(
                slide_id=slide_id,
                label=labels.pop(),
                root=root,
                images=tuple(m["image"] for m in members),
                tile_x=tuple(int(float(m.get("tile_x") or -1)) for m in members),
                tile_y=tuple(int(float(m.get("tile_y") or -1)) for m in members),
                patient_id=patients.pop(),
            )
        )
    return bags, splits
