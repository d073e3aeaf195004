"""A patient's slides never straddle two splits or two cross-validation folds, over randomised tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from himl_cpath.deepmil_data import LabelledSlide, SlideSplits, split_slides
from himl_cpath.slide_records import tile_bags_from_rows
from himl_cpath.slide_table import SlideRecord, slides_from_csv
from hypothesis import given, settings
from hypothesis import strategies as st

from himl_kernel.errors import HimlError


def table(patients: list[tuple[int, int]]) -> list[LabelledSlide]:
    """One slide per entry: (patient number, label); the patient's first slide sets its class."""
    first_label: dict[int, int] = {}
    slides = []
    for index, (patient, label) in enumerate(patients):
        first_label.setdefault(patient, label)
        record = SlideRecord(f"slide_{index:03d}", Path(f"{index}.svs"), str(label), patient_id=f"P{patient}")
        slides.append(LabelledSlide(record, label))
    return slides


def where(splits: SlideSplits) -> dict[str, set[str]]:
    """Patient id -> the names of the splits its slides are in."""
    found: dict[str, set[str]] = {}
    for name in ("train", "val", "test"):
        for slide in splits.of(name):
            found.setdefault(slide.record.patient_id, set()).add(name)
    return found


patient_tables = st.lists(st.tuples(st.integers(0, 39), st.integers(0, 1)), min_size=30, max_size=120)


@settings(max_examples=60, deadline=None)
@given(
    patients=patient_tables,
    val=st.sampled_from([0.1, 0.2, 0.3]),
    test=st.sampled_from([0.1, 0.2, 0.3]),
    folds=st.sampled_from([1, 2, 3, 5]),
    seed=st.integers(0, 1000),
)
def test_a_patients_slides_share_one_split_and_one_fold(
    patients: list[tuple[int, int]], val: float, test: float, folds: int, seed: int
) -> None:
    slides = table(patients)
    try:
        runs = [
            split_slides(
                slides, val_fraction=val, test_fraction=test, seed=seed, crossval_count=folds, crossval_index=index
            )
            for index in range(folds)
        ]
    except HimlError as exc:  # a table too small for the fractions is refused, never split wrongly
        assert "too few" in str(exc)
        return
    for splits in runs:
        assert sorted(s.record.slide_id for name in ("train", "val", "test") for s in splits.of(name)) == sorted(
            s.record.slide_id for s in slides
        )
        assert all(len(names) == 1 for names in where(splits).values())
    if folds > 1:
        tests = {frozenset(s.record.slide_id for s in splits.test) for splits in runs}
        assert len(tests) == 1  # the test patients stay the same in every fold
        folds_of: dict[str, list[int]] = {}
        for index, splits in enumerate(runs):
            for patient in {s.record.patient_id for s in splits.val}:
                folds_of.setdefault(patient, []).append(index)
        assert all(len(indices) == 1 for indices in folds_of.values())


def test_without_patient_ids_the_split_is_the_one_of_single_slides() -> None:
    slides = [LabelledSlide(SlideRecord(f"s{i:02d}", Path(f"{i}.svs"), str(i % 2)), i % 2) for i in range(30)]
    splits = split_slides(slides, val_fraction=0.2, test_fraction=0.2, seed=3)
    assert len(splits.test) == 6 and len(splits.val) == 6 and len(splits.train) == 18


def test_conflicting_fixed_splits_of_one_patient_are_one_line() -> None:
    slides = table([(1, 0), (1, 0), (2, 1)] + [(3 + i, i % 2) for i in range(20)])
    fixed = {"slide_000": "train", "slide_001": "test"}
    with pytest.raises(HimlError, match="patient P1: its slides are given different splits: test, train"):
        split_slides(slides, val_fraction=0.2, test_fraction=0.2, seed=0, fixed=fixed)
    splits = split_slides(slides, val_fraction=0.2, test_fraction=0.2, seed=0, fixed={"slide_000": "test"})
    assert {"slide_000", "slide_001"} <= {s.record.slide_id for s in splits.test}


def test_patient_ids_are_read_from_slide_and_tile_tables(tmp_path: Path) -> None:
    csv = tmp_path / "dataset.csv"
    csv.write_text("image,slide_id,label,patient_id\na.svs,a,1, P7 \nb.svs,b,0,\n", encoding="utf-8")
    assert [r.patient_id for r in slides_from_csv(csv)] == ["P7", ""]
    rows = [{"slide_id": "a", "image": "a/1.png", "label": "1", "patient_id": "P7"}]
    bags, _ = tile_bags_from_rows(rows, tmp_path, "tiles.csv")
    assert bags[0].patient_id == "P7"
    rows.append({"slide_id": "a", "image": "a/2.png", "label": "1", "patient_id": "P8"})
    with pytest.raises(HimlError, match="name different patients: P7, P8"):
        tile_bags_from_rows(rows, tmp_path, "tiles.csv")
