"""Reading chest X-rays: DICOM (pydicom), PNG and JPEG, as 8-bit greyscale Pillow images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from himl_kernel.errors import HimlError

#: Suffixes read with Pillow.
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg")
DICOM_SUFFIXES = (".dcm", ".dicom")
SUFFIXES = RASTER_SUFFIXES + DICOM_SUFFIXES


def remap_to_uint8(array: np.ndarray, percentiles: tuple[float, float] | None = None) -> np.ndarray:
    """Linearly map ``array`` onto 0..255 as ``uint8``; with ``percentiles``, those percentiles become 0 and 255.

    A constant array maps to zeros.
    """
    values = np.asarray(array, dtype=np.float64)
    if percentiles is not None:
        if len(percentiles) != 2:
            raise HimlError(f"percentiles should be two numbers (low, high), got {percentiles!r}")
        low, high = np.percentile(values, percentiles)
        values = np.clip(values, low, high)
    values = values - values.min()
    top = values.max()
    if top > 0:
        values = values / top
    remapped: np.ndarray = (values * 255).astype(np.uint8)
    return remapped


def read_dicom(path: Path, percentiles: tuple[float, float] | None = None) -> np.ndarray:
    """A DICOM file's pixels windowed to 8 bits (MONOCHROME1 inverted so that dense is bright).

    Multi-frame files give their first frame; colour files their luminance.
    """
    import pydicom

    try:
        dataset = pydicom.dcmread(path)
        pixels = np.asarray(dataset.pixel_array, dtype=np.float64)
    except Exception as exc:  # pydicom raises many types for unreadable files
        raise HimlError(f"cannot read DICOM pixels from {path}: {str(exc).splitlines()[0]}") from exc
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2"))
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    samples = int(getattr(dataset, "SamplesPerPixel", 1) or 1)
    if frames > 1:
        pixels = pixels[0]
    if samples > 1:
        pixels = pixels[..., :3] @ np.array([0.299, 0.587, 0.114])
    if photometric == "MONOCHROME1":
        pixels = pixels.max() - pixels
    if pixels.ndim != 2:
        raise HimlError(f"DICOM {path}: expected a 2-D image, got pixel data of shape {pixels.shape}")
    return remap_to_uint8(pixels, percentiles)


def load_image(path: str | Path, dicom_percentiles: tuple[float, float] | None = (0.0, 100.0)) -> Image.Image:
    """The image at ``path`` as an 8-bit greyscale (mode ``L``) Pillow image.

    DICOM values are windowed to 8 bits by ``dicom_percentiles``; PNG and JPEG (grey or colour, 8 or 16 bit)
    are remapped to the full 0..255 range.
    """
    path = Path(path)
    if not path.is_file():
        raise HimlError(f"image {path} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return Image.fromarray(read_dicom(path, dicom_percentiles), mode="L")
    if suffix not in RASTER_SUFFIXES:
        raise HimlError(f"image {path}: unsupported type {suffix!r}; expected one of {', '.join(SUFFIXES)}")
    try:
        with Image.open(path) as raw:
            image = raw.convert("L") if raw.mode in ("RGB", "RGBA", "P", "LA", "CMYK") else raw.copy()
    except OSError as exc:
        raise HimlError(f"cannot read image {path}: {exc}") from exc
    return Image.fromarray(remap_to_uint8(np.asarray(image)), mode="L")
