"""The batch augmentations: each sample its own parameters, the right shapes and ranges, and the YAML config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from himl_ssl.augment import (
    AugmentationConfig,
    augment_batch,
    colour_jitter,
    gaussian_blur,
    load_augmentation_config,
    random_resized_crop,
)

from himl_kernel.errors import HimlError


def test_a_view_has_the_requested_size_and_stays_in_range() -> None:
    torch.manual_seed(0)
    images = torch.rand(6, 3, 40, 48)
    view = augment_batch(images, AugmentationConfig(), 32)
    assert view.shape == (6, 3, 32, 32)
    assert float(view.min()) >= 0 and float(view.max()) <= 1 + 1e-5


def test_samples_get_their_own_crops() -> None:
    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32).expand(8, 3, 32, 32).contiguous()
    crops = random_resized_crop(image, AugmentationConfig(), 16)
    distinct = {tuple(c.flatten()[:20].tolist()) for c in crops}
    assert len(distinct) == 8


def test_a_full_crop_of_scale_one_is_the_image_resized() -> None:
    images = torch.rand(2, 3, 16, 16)
    config = AugmentationConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
    torch.testing.assert_close(random_resized_crop(images, config, 16), images, atol=1e-5, rtol=0)


def test_jitter_of_strength_zero_changes_nothing_and_blur_keeps_the_mean() -> None:
    images = torch.rand(3, 3, 20, 20)
    torch.testing.assert_close(colour_jitter(images, 0.0), images, atol=1e-5, rtol=0)
    blurred = gaussian_blur(images, torch.tensor([0.5, 1.0, 2.0]), 7)
    assert blurred.shape == images.shape
    assert float(blurred.std()) < float(images.std())
    torch.testing.assert_close(blurred.mean(dim=(1, 2, 3)), images.mean(dim=(1, 2, 3)), atol=0.02, rtol=0)


def test_greyscale_always_gives_equal_channels() -> None:
    config = AugmentationConfig(grey_probability=1.0, jitter_probability=0.0, blur_probability=0.0)
    view = augment_batch(torch.rand(4, 3, 16, 16), config, 16)
    torch.testing.assert_close(view[:, 0], view[:, 1])


def test_yaml_config_is_checked_field_by_field(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("flip_probability: 0.0\ncrop_scale: [0.5, 1.0]\n")
    config = load_augmentation_config(good)
    assert config.flip_probability == 0.0 and config.crop_scale == (0.5, 1.0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("flip_probability: 2\n")
    with pytest.raises(HimlError, match=r"bad.yaml: flip_probability: .*less than or equal to 1"):
        load_augmentation_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("flip_prob: 0.5\n")
    with pytest.raises(HimlError, match="flip_prob: Extra inputs"):
        load_augmentation_config(unknown)
    reversed_range = tmp_path / "range.yaml"
    reversed_range.write_text("crop_scale: [0.9, 0.2]\n")
    with pytest.raises(HimlError, match="crop_scale must be"):
        load_augmentation_config(reversed_range)
    with pytest.raises(HimlError, match="does not exist"):
        load_augmentation_config(tmp_path / "missing.yaml")
