"""Similarity scores and phrase-grounding maps: size, NaN outside the crop, and where the maximum lands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from himl_multimodal.image import get_image_inference
from himl_multimodal.text import get_bert_inference
from himl_multimodal.vlp import ImageTextInferenceEngine, convert_similarity_to_image_size, similarity_grid
from scipy import ndimage

from himl_kernel.errors import HimlError
from tests.multimodal.conftest import write_grey


def test_map_covers_the_centre_crop_and_is_nan_outside() -> None:
    grid = np.zeros((4, 4))
    grid[1, 3] = 1.0
    out = convert_similarity_to_image_size(grid, width=300, height=200, resize_size=100, crop_size=80)
    assert out.shape == (200, 300)
    # the crop is 80/100 of the short side (160 px), centred: rows 20..179, columns 70..229
    inside = np.zeros_like(out, dtype=bool)
    inside[20:180, 70:230] = True
    assert np.isnan(out[~inside]).all()
    assert not np.isnan(out[inside]).any()
    # each patch is 40 px; patch (row 1, column 3) covers rows 60..99 and columns 190..229
    assert np.nanmax(out) == 1.0
    rows, cols = np.nonzero(out == 1.0)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (60, 99, 190, 229)


def test_portrait_images_and_smooth_interpolation() -> None:
    grid = np.arange(9.0).reshape(3, 3)
    out = convert_similarity_to_image_size(
        grid, width=90, height=151, resize_size=None, crop_size=None, interpolation="bilinear"
    )
    assert out.shape == (151, 90)
    assert np.isnan(out[:30]).all() and np.isnan(out[-31:]).all()
    assert not np.isnan(out[30:120]).any()
    assert out[30, 0] < out[119, 89]
    with pytest.raises(HimlError, match="interpolation 'cubic' is not known"):
        convert_similarity_to_image_size(grid, 90, 90, None, None, interpolation="cubic")


def test_similarity_grid_is_cosine_then_gaussian_sigma_1_5() -> None:
    patches = F.normalize(torch.randn(5, 6, 8), dim=-1)
    text = F.normalize(torch.randn(1, 8), dim=-1)
    expected = ndimage.gaussian_filter((patches @ text[0]).numpy().astype(np.float64), sigma=1.5)
    assert np.allclose(similarity_grid(patches, text), expected)
    with pytest.raises(HimlError, match="does not fit"):
        similarity_grid(patches, torch.ones(1, 4))


@pytest.fixture
def joint_engine(image_weights: Path, text_folder: Path) -> ImageTextInferenceEngine:
    image = get_image_inference("biovil", image_weights, backbone="resnet18", resize=128, center_crop_size=96)
    return ImageTextInferenceEngine(image, get_bert_inference("cxr_bert", model=text_folder))


def test_map_from_raw_data_is_at_image_size_with_maximum_where_the_patches_say(
    joint_engine: ImageTextInferenceEngine, tmp_path: Path
) -> None:
    array = np.full((160, 200), 30, dtype=np.uint8)
    array[40:90, 120:170] = 220  # a bright block right of centre, in the top half
    path = write_grey(tmp_path / "block.png", array)
    phrase = "right lung opacity"
    out = joint_engine.get_similarity_map_from_raw_data(path, phrase)
    assert out.shape == (160, 200)
    # resize 128 of the 160 px side, crop 96 -> 120 px of the original, centred
    assert np.isnan(out[:20]).all() and np.isnan(out[:, :40]).all() and np.isnan(out[:, 160:]).all()
    assert not np.isnan(out[20:140, 40:160]).any()
    patches, size = joint_engine.image_inference_engine.get_projected_patch_embeddings(path)
    assert size == (200, 160)
    text = joint_engine.text_inference_engine.get_embeddings_from_prompt(phrase)
    grid = similarity_grid(patches, text)
    best_row, best_col = np.unravel_index(int(np.argmax(grid)), grid.shape)
    patch_px = 120 / grid.shape[0]
    row, col = np.unravel_index(int(np.nanargmax(out)), out.shape)
    assert int((row - 20) // patch_px) == best_row and int((col - 40) // patch_px) == best_col


def test_similarity_score_is_cosine_with_mean_text_embedding(
    joint_engine: ImageTextInferenceEngine, tmp_path: Path
) -> None:
    path = write_grey(tmp_path / "x.png", np.random.default_rng(1).integers(0, 256, (100, 100)))
    image = joint_engine.image_inference_engine.get_projected_global_embedding(path)
    texts = ["left opacity", "right opacity"]
    raw = joint_engine.text_inference_engine.get_embeddings_from_prompt(texts, normalize=False)
    expected = float(image @ F.normalize(raw.mean(dim=0), dim=0))
    assert joint_engine.get_similarity_score_from_raw_data(path, texts) == pytest.approx(expected, abs=1e-6)
    single = joint_engine.get_similarity_score_from_raw_data(path, "left opacity")
    assert -1.0 <= single <= 1.0
