"""Patient-level bags: all the cached tiles of a patient's slides form one DeepMIL bag."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from himl_cpath.deepmil_data import FeatureBags, LabelledSlide, PatientBags, collate_bags
from himl_cpath.encoders import TileEncoder
from himl_cpath.feature_cache import cache_features, load_features
from himl_cpath.slide_table import SlideRecord
from himl_cpath.tiling import TilingOptions
from torch import nn

from himl_kernel.errors import HimlError

from ..conftest import error_lines, run_himl
from .conftest import SlideFolder

OPTIONS = TilingOptions(tile_size=128, min_occupancy=0.5)


class _Colours(nn.Module):
    num_features = 3

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.float().mean(dim=(2, 3))


def _slides(slide_folder: SlideFolder, patients: dict[str, str], labels: dict[str, int]) -> list[LabelledSlide]:
    by_id = {s.path.stem: s for s in slide_folder.slides}
    return [
        LabelledSlide(SlideRecord(sid, by_id[sid].path, str(label), patient_id=patients.get(sid, "")), label)
        for sid, label in labels.items()
    ]


def test_a_patients_tiles_from_several_slides_form_one_bag(slide_folder: SlideFolder, tmp_path: Path) -> None:
    slides = _slides(slide_folder, {"slide_01": "P7", "slide_04": "P7"}, {"slide_01": 0, "slide_02": 0, "slide_04": 0})
    encoder = TileEncoder("colours", _Colours(), "colours-0", frozen=True)
    folder, _ = cache_features([s.record for s in slides], encoder, OPTIONS, tmp_path / "cache", workers=0)
    bags = PatientBags(FeatureBags(folder, slides))
    assert len(bags) == 2
    patient, alone = bags[0], bags[1]
    first, second = load_features(folder, "slide_01"), load_features(folder, "slide_04")
    assert patient["slide_id"] == "P7" and patient["label"] == 0 and alone["slide_id"] == "slide_02"
    torch.testing.assert_close(patient["features"], torch.cat([first.features, second.features]))
    assert patient["tile_slide"] == ["slide_01"] * len(first.features) + ["slide_04"] * len(second.features)
    assert patient["tile_x"].tolist() == first.tile_x.tolist() + second.tile_x.tolist()
    assert patient["tile_index"].tolist() == list(range(len(first.features))) + list(range(len(second.features)))
    drawn = PatientBags(FeatureBags(folder, slides), max_bag_size=5)[0]
    assert len(drawn["features"]) == 5 and set(drawn["tile_slide"]) <= {"slide_01", "slide_04"}
    batch = collate_bags([patient, alone])
    assert batch["tile_slide"][1] == ["slide_02"] * len(alone["features"]) and batch["mask"].shape[0] == 2


def test_a_patient_whose_slides_disagree_is_one_line(slide_folder: SlideFolder, tmp_path: Path) -> None:
    slides = _slides(slide_folder, {"slide_00": "P1", "slide_01": "P1"}, {"slide_00": 1, "slide_01": 0})
    encoder = TileEncoder("colours", _Colours(), "colours-0", frozen=True)
    folder, _ = cache_features([s.record for s in slides], encoder, OPTIONS, tmp_path / "cache", workers=0)
    with pytest.raises(HimlError) as caught:
        PatientBags(FeatureBags(folder, slides))
    assert str(caught.value) == (
        "patient P1: its slides have different labels, so they cannot form one patient-level bag: "
        "slide_00 (1), slide_01 (0)"
    )


def _table(tmp_path: Path, slide_folder: SlideFolder, rows: list[tuple[str, str]]) -> Path:
    by_id = {s.path.stem: s for s in slide_folder.slides}
    lines = ["image,slide_id,label,patient_id"]
    lines += [f"{by_id[sid].path},{sid},{by_id[sid].label},{patient}" for sid, patient in rows]
    table = tmp_path / "dataset.csv"
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return table


RUN = [
    "run", "--model", "DeepMIL", "--max_epochs", "1", "--batch_size", "2", "--pl_num_sanity_val_steps", "0",
    "--tile_size", "112", "--val_fraction", "0.25", "--test_fraction", "0.4", "--bag_level", "patient",
]  # fmt: skip


@pytest.mark.slow
def test_deepmil_with_patient_bags_writes_one_bag_per_patient(slide_folder: SlideFolder, tmp_path: Path) -> None:
    patients = [("slide_00", "A"), ("slide_03", "A"), ("slide_01", "B"), ("slide_02", "B"), ("slide_04", "C")]
    patients += [("slide_05", "C"), ("slide_06", "D"), ("slide_09", "D"), ("slide_07", ""), ("slide_08", "")]
    table = _table(tmp_path, slide_folder, patients)
    env = {"HIML_HOME": str(tmp_path / "home"), "HIML_CACHE": str(tmp_path / "cache")}
    result = run_himl(*RUN, "--slides_csv", str(table), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    (output,) = (tmp_path / "home").rglob("test_output.csv")
    with output.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    patient_of = {sid: patient or sid for sid, patient in patients}
    assert rows and all(patient_of[row["tile_slide"]] == row["slide_id"] for row in rows)
    assert len({row["slide_id"] for row in rows}) < len({row["tile_slide"] for row in rows})  # bags of two slides
    assert (output.parent / "test_confusion_matrix.png").is_file()

    mixed = _table(tmp_path, slide_folder, [("slide_00", "A"), ("slide_01", "A"), *patients[2:]])
    refused = run_himl(*RUN, "--slides_csv", str(mixed), cwd=tmp_path, env=env)
    assert refused.returncode != 0
    lines = error_lines(refused.stderr)
    assert len(lines) == 1 and "patient A: its slides have different labels" in lines[0], refused.stderr[-2000:]
