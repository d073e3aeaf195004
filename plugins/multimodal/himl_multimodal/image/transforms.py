"""hi-ml's inference preprocessing: resize the short side, centre-crop a square, 3 channels in 0..1, no mean/std."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.transforms import functional as TF  # type: ignore[import-untyped]

#: (resize, centre crop) of the published models.
BIOVIL_SIZES = (512, 480)
BIOVIL_T_SIZES = (512, 448)


@dataclass(frozen=True)
class ChestXrayTransform:
    """Resize the shorter side to ``resize`` (bilinear), centre-crop ``crop_size`` square, copy grey into 3 channels."""

    resize: int
    crop_size: int

    def __post_init__(self) -> None:
        if self.resize <= 0 or self.crop_size <= 0:
            raise ValueError(f"resize and crop sizes must be positive, got {self.resize} and {self.crop_size}")

    def __call__(self, image: Image.Image) -> torch.Tensor:
        resized = TF.resize(image, self.resize, interpolation=TF.InterpolationMode.BILINEAR)
        cropped = TF.center_crop(resized, [self.crop_size, self.crop_size])
        tensor: torch.Tensor = TF.to_tensor(cropped)
        if tensor.shape[0] == 1:
            tensor = tensor.expand(3, -1, -1).contiguous()
        return tensor


def create_chest_xray_transform_for_inference(resize: int, center_crop_size: int) -> ChestXrayTransform:
    """hi-ml's name for the inference transform."""
    return ChestXrayTransform(resize, center_crop_size)
