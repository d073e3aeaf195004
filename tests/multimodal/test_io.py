"""Reading images: DICOM files that pydicom ships, PNG/JPEG in grey and colour, and remapping to 8 bits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from himl_multimodal.image.io import load_image, remap_to_uint8
from PIL import Image

from himl_kernel.errors import HimlError

#: pydicom's own test files, inside the installed package (never downloaded).
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_dicom_files_read_as_8_bit_grey_windowed_to_full_range(name: str) -> None:
    path = PYDICOM_FILES / name
    raw = pydicom.dcmread(path).pixel_array
    image = load_image(path)
    assert image.mode == "L"
    assert image.size == (raw.shape[1], raw.shape[0])
    pixels = np.asarray(image)
    assert pixels.min() == 0 and pixels.max() == 255
    # the mapping is monotonic: the brightest raw pixel stays brightest
    assert pixels.flat[int(np.argmax(raw))] == 255
    assert pixels.flat[int(np.argmin(raw))] == 0


def test_dicom_percentiles_clip_outliers() -> None:
    path = PYDICOM_FILES / "CT_small.dcm"
    clipped = np.asarray(load_image(path, dicom_percentiles=(1.0, 99.0)))
    full = np.asarray(load_image(path))
    assert (clipped == 255).sum() > (full == 255).sum()


def test_dicom_without_pixels_is_one_line() -> None:
    with pytest.raises(HimlError, match="cannot read DICOM pixels") as info:
        load_image(PYDICOM_FILES / "rtplan.dcm")
    assert "\n" not in str(info.value)


def test_remap_to_uint8() -> None:
    out = remap_to_uint8(np.array([[10.0, 20.0], [30.0, 1000.0]]))
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert remap_to_uint8(np.full((2, 2), 7.0)).max() == 0
    low, high = remap_to_uint8(np.arange(101.0), percentiles=(10, 90))[[5, 95]]
    assert (low, high) == (0, 255)
    with pytest.raises(HimlError, match="two numbers"):
        remap_to_uint8(np.zeros(3), percentiles=(1.0,))  # type: ignore[arg-type]


def test_png_jpeg_grey_and_rgb(tmp_path: Path) -> None:
    grey = np.tile(np.arange(0, 200, 2, dtype=np.uint8), (10, 1))
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "c.jpg", quality=95)
    Image.fromarray(grey.astype(np.uint16) * 300).save(tmp_path / "deep.png")
    for name in ("g.png", "c.jpg", "deep.png"):
        image = load_image(tmp_path / name)
        assert image.mode == "L" and image.size == (100, 10)
        pixels = np.asarray(image).astype(int)
        assert pixels[:, 0].max() <= 3 and pixels[:, -1].min() >= 250, name
