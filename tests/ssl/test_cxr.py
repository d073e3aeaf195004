"""Chest X-ray layouts: RSNA's dataset.csv, NIH's Data_Entry_2017.csv and CheXpert's tables, DICOM or PNG images."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from himl_ssl.cxr import read_dicom
from himl_ssl.data import ImageDataset, detect_layout, find_images
from himl_ssl.splits import is_validation
from PIL import Image
from pydicom.data import get_testdata_file

from himl_kernel.errors import HimlError

DICOM = Path(str(get_testdata_file("CT_small.dcm")))


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((24, 24), value, dtype=np.uint8)).save(path)


def _subjects(count: int) -> list[str]:
    """Subject ids with at least one in each split (the split goes by a hash of the id)."""
    names = [f"subject-{i:03d}" for i in range(200)]
    val = [n for n in names if is_validation(n)][:1]
    return val + [n for n in names if not is_validation(n)][: count - 1]


def test_an_rsna_folder_reads_dicom_and_png_images_with_their_labels(tmp_path: Path) -> None:
    subjects = _subjects(6)
    lines = ["subject,label"]
    for index, subject in enumerate(subjects):
        if index % 2:
            _png(tmp_path / f"{subject}.png", 200)
        else:
            shutil.copy(DICOM, tmp_path / f"{subject}.dcm")
        lines.append(f"{subject},{index % 2}")
    (tmp_path / "dataset.csv").write_text("\n".join(lines) + "\n")
    assert detect_layout(tmp_path) == "RSNA"
    train, val = find_images(tmp_path, "auto", "train"), find_images(tmp_path, "RSNA", "val")
    assert {p.stem for p in train.paths} | {p.stem for p in val.paths} == set(subjects)
    assert not {p.stem for p in train.paths} & {p.stem for p in val.paths}
    assert train.labels == [int(subjects.index(p.stem) % 2) for p in train.paths]
    dataset = ImageDataset(train, 32)
    for index in range(len(dataset)):
        image, _ = dataset[index]
        assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
        assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])  # grey, as three channels


def test_a_dicom_is_scaled_from_its_range_to_0_255_keeping_the_order_of_values(tmp_path: Path) -> None:
    pixels = pydicom.dcmread(DICOM).pixel_array
    image = read_dicom(DICOM)
    assert image.shape == (*pixels.shape, 3) and image.dtype == np.uint8
    assert image.min() == 0 and image.max() == 255
    grey = image[..., 0]
    assert (grey[pixels == pixels.max()] == 255).all() and (grey[pixels == pixels.min()] == 0).all()
    in_order = grey.ravel()[np.argsort(pixels.ravel(), kind="stable")].astype(int)
    assert (np.diff(in_order) >= 0).all()  # the scaling keeps the order of the pixels' values
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not a dicom file")
    with pytest.raises(HimlError, match=r"broken\.dcm cannot be read"):
        read_dicom(broken)


def test_a_tiles_table_named_dataset_csv_is_still_a_tiles_table(tmp_path: Path) -> None:
    (tmp_path / "dataset.csv").write_text("slide_id,image,label\ns1,t.png,1\n")
    assert detect_layout(tmp_path) == "TilesDataset"


def test_an_nih_folder_finds_images_below_it_and_labels_pneumonia_like_findings(tmp_path: Path) -> None:
    rows = [
        ("00000001_000.png", "Pneumonia|Effusion", "1"),
        ("00000002_000.png", "No Finding", "2"),
        ("00000003_000.png", "Infiltration", "3"),
        ("00000004_000.png", "Cardiomegaly", "4"),
    ]
    lines = ["Image Index,Finding Labels,Follow-up #,Patient ID"]
    for name, findings, patient in rows:
        _png(tmp_path / "images_001" / "images" / name, 100)
        lines.append(f"{name},{findings},0,{patient}")
    (tmp_path / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "test_list.txt").write_text("00000004_000.png\n")
    assert detect_layout(tmp_path) == "NIH"
    train = find_images(tmp_path, "auto", "train")
    assert [p.name for p in train.paths] == [r[0] for r in rows[:3]] and train.labels == [1, 0, 1]
    val = find_images(tmp_path, "NIH", "val")
    assert [p.name for p in val.paths] == ["00000004_000.png"] and val.labels == [0]
    (tmp_path / "images_001" / "images" / "00000002_000.png").unlink()
    with pytest.raises(HimlError, match=r"line 3: image '00000002_000.png' is nowhere under"):
        find_images(tmp_path, "NIH", "train")


def _chexpert(root: Path) -> Path:
    folder = root / "CheXpert-v1.0-small"
    for split, table, values in (("train", "train.csv", ("1.0", "-1.0", "")), ("valid", "valid.csv", ("0.0", "1.0"))):
        lines = ["Path,Sex,Pneumonia"]
        for index, value in enumerate(values):
            relative = f"CheXpert-v1.0-small/{split}/patient{index:05d}/study1/view1_frontal.jpg"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((24, 24), 50, dtype=np.uint8)).save(root / relative)
            lines.append(f"{relative},Female,{value}")
        (folder / table).write_text("\n".join(lines) + "\n")
    return folder


def test_a_chexpert_folder_reads_its_two_tables_and_counts_uncertain_as_negative(tmp_path: Path) -> None:
    folder = _chexpert(tmp_path)
    assert detect_layout(folder) == "CheXpert"
    train = find_images(folder, "auto", "train")
    assert train.labels == [1, 0, 0] and all(p.is_file() for p in train.paths)
    assert find_images(folder, "CheXpert", "val").labels == [0, 1]
    assert ImageDataset(train, 16)[0][0].shape == (3, 16, 16)


def test_a_table_naming_an_image_outside_the_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    folder = _chexpert(tmp_path)
    _png(tmp_path / "secret.png", 1)
    (folder / "valid.csv").write_text("Path,Pneumonia\n../secret.png,1\n")
    with pytest.raises(HimlError, match=r"valid.csv line 2: image '../secret.png' lies outside the dataset folder"):
        find_images(folder, "CheXpert", "val")
    rsna = tmp_path / "rsna"
    rsna.mkdir()
    (rsna / "dataset.csv").write_text("subject,label\n../secret,1\n")
    with pytest.raises(HimlError, match="lies outside the dataset folder"):
        find_images(rsna, "RSNA", "train" if not is_validation("../secret") else "val")
    (rsna / "dataset.csv").write_text("patient,label\np,1\n")
    with pytest.raises(HimlError, match="needs the columns subject"):
        find_images(rsna, "RSNA", "train")
