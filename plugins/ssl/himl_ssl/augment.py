"""SimCLR's augmentations applied to whole batches, each sample with its own random parameters.

Per-sample PIL augmentation is the usual CPU bottleneck of contrastive
training: the loader cannot keep up with the model. Here a batch of images
(``(N, C, H, W)`` floats in [0, 1], on whatever device the model is) is
augmented in a handful of tensor operations: random resized crops through one
``roi_align``, flips with a mask, colour jitter as per-sample factors (hue by a
rotation in YIQ space), greyscale with a mask, Gaussian blur as one grouped
convolution with a kernel per sample.

The parameters come from :class:`AugmentationConfig`, the SimCLR paper's by
default, or from a YAML file (:func:`load_augmentation_config`) validated field
by field.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import Tensor

from himl_kernel.errors import HimlError

#: Where the random parameters come from: a generator on the images' device, or None for torch's global one.
Generator = torch.Generator | None


class AugmentationConfig(BaseModel):
    """The augmentations of one view (the SimCLR paper's defaults)."""

    model_config = ConfigDict(extra="forbid")

    crop_scale: tuple[float, float] = Field((0.08, 1.0), description="area share of the random resized crop")
    crop_ratio: tuple[float, float] = Field((3 / 4, 4 / 3), description="aspect ratios of the crop")
    flip_probability: float = Field(0.5, ge=0, le=1, description="chance of a horizontal flip")
    jitter_probability: float = Field(0.8, ge=0, le=1, description="chance of colour jitter")
    jitter_strength: float = Field(
        1.0, ge=0, description="s of the paper: brightness, contrast, saturation 0.8 s; hue 0.2 s"
    )
    grey_probability: float = Field(0.2, ge=0, le=1, description="chance of turning the image grey")
    blur_probability: float = Field(0.5, ge=0, le=1, description="chance of a Gaussian blur")
    blur_sigma: tuple[float, float] = Field((0.1, 2.0), description="range of the blur's sigma in pixels")
    blur_kernel_fraction: float = Field(0.1, gt=0, le=1, description="blur kernel side as a share of the image side")

    @model_validator(mode="after")
    def _ranges(self) -> AugmentationConfig:
        for name in ("crop_scale", "crop_ratio", "blur_sigma"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high; got ({low}, {high})")
        if self.crop_scale[1] > 1:
            raise ValueError(f"crop_scale cannot exceed 1; got {self.crop_scale[1]}")
        return self


def load_augmentation_config(path: Path) -> AugmentationConfig:
    """An :class:`AugmentationConfig` from a YAML file; a wrong field is one line naming it."""
    import yaml

    if not path.is_file():
        raise HimlError(f"augmentation config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise HimlError(f"augmentation config {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise HimlError(f"augmentation config {path} must be a mapping of field: value")
    try:
        return AugmentationConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(config)"
        raise HimlError(f"augmentation config {path}: {where}: {first['msg']}") from None


def _uniform(n: int, low: float, high: float, device: torch.device, generator: Generator) -> Tensor:
    return torch.rand(n, device=device, generator=generator) * (high - low) + low


def _chance(n: int, probability: float, device: torch.device, generator: Generator) -> Tensor:
    return torch.rand(n, device=device, generator=generator) < probability


def random_resized_crop(images: Tensor, config: AugmentationConfig, size: int, generator: Generator = None) -> Tensor:
    """A random crop of each image (area and aspect ratio from the config), resized to ``size`` x ``size``."""
    from torchvision.ops import roi_align  # type: ignore[import-untyped]

    n, _, height, width = images.shape
    device = images.device
    area = _uniform(n, *config.crop_scale, device, generator) * height * width
    log_ratio = _uniform(n, math.log(config.crop_ratio[0]), math.log(config.crop_ratio[1]), device, generator)
    ratio = torch.exp(log_ratio)
    crop_w = torch.sqrt(area * ratio).clamp(1, width)
    crop_h = torch.sqrt(area / ratio).clamp(1, height)
    x0 = torch.rand(n, device=device, generator=generator) * (width - crop_w)
    y0 = torch.rand(n, device=device, generator=generator) * (height - crop_h)
    boxes = torch.stack([torch.arange(n, device=device, dtype=images.dtype), x0, y0, x0 + crop_w, y0 + crop_h], dim=1)
    crops: Tensor = roi_align(images, boxes.to(images.dtype), output_size=(size, size), spatial_scale=1.0, aligned=True)
    return crops


def _grey(images: Tensor) -> Tensor:
    weights = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def _rotate_hue(images: Tensor, angle: Tensor) -> Tensor:
    """Rotate the chroma of RGB images by ``angle`` (radians, one per image) in YIQ space."""
    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=images.device
    ).to(images.dtype)
    to_rgb = torch.linalg.inv(to_yiq)
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    rotation = torch.stack(
        [torch.stack([one, zero, zero], -1), torch.stack([zero, cos, -sin], -1), torch.stack([zero, sin, cos], -1)],
        dim=-2,
    )  # (N, 3, 3)
    matrix = to_rgb @ rotation @ to_yiq
    return torch.einsum("nij,njhw->nihw", matrix, images)


def colour_jitter(images: Tensor, strength: float, generator: Generator = None) -> Tensor:
    """Brightness, contrast, saturation (each by a factor in [1 - 0.8 s, 1 + 0.8 s]) and hue (+-0.2 s turns)."""
    n, device = images.shape[0], images.device
    spread = 0.8 * strength
    low = max(0.0, 1 - spread)

    def factor() -> Tensor:
        return _uniform(n, low, 1 + spread, device, generator).view(n, 1, 1, 1)

    out = (images * factor()).clamp(0, 1)
    mean = _grey(out).mean(dim=(2, 3), keepdim=True)
    out = ((out - mean) * factor() + mean).clamp(0, 1)
    grey = _grey(out)
    out = ((out - grey) * factor() + grey).clamp(0, 1)
    if out.shape[1] == 3:
        hue = min(0.2 * strength, 0.5)
        out = _rotate_hue(out, _uniform(n, -hue, hue, device, generator) * 2 * math.pi).clamp(0, 1)
    return out


def gaussian_blur(images: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Blur each image with its own sigma (pixels), as one grouped convolution of separable kernels."""
    n, channels, height, width = images.shape
    radius = kernel_size // 2
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-(offsets.view(1, -1) ** 2) / (2 * sigma.view(-1, 1).to(images.dtype) ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (N, K)
    kernel = kernel.repeat_interleave(channels, dim=0)  # one per (image, channel)
    flat = images.reshape(1, n * channels, height, width)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, kernel.view(n * channels, 1, 1, -1), groups=n * channels)
    flat = F.conv2d(flat, kernel.view(n * channels, 1, -1, 1), groups=n * channels)
    return flat.view(n, channels, height, width)


def augment_batch(images: Tensor, config: AugmentationConfig, size: int, generator: Generator = None) -> Tensor:
    """One SimCLR view of every image of ``images`` ((N, C, H, W) in [0, 1]), ``size`` pixels square.

    The random parameters come from ``generator`` (on the images' device), or torch's global one when None.
    """
    n, device = images.shape[0], images.device
    out = random_resized_crop(images, config, size, generator)
    flip = _chance(n, config.flip_probability, device, generator).view(n, 1, 1, 1)
    out = torch.where(flip, out.flip(-1), out)
    if config.jitter_probability > 0 and config.jitter_strength > 0:
        jitter = _chance(n, config.jitter_probability, device, generator).view(n, 1, 1, 1)
        out = torch.where(jitter, colour_jitter(out, config.jitter_strength, generator), out)
    if config.grey_probability > 0 and out.shape[1] == 3:
        grey = _chance(n, config.grey_probability, device, generator).view(n, 1, 1, 1)
        out = torch.where(grey, _grey(out).expand_as(out), out)
    kernel_size = int(size * config.blur_kernel_fraction) // 2 * 2 + 1
    if config.blur_probability > 0 and kernel_size >= 3 and kernel_size // 2 < size:
        blur = _chance(n, config.blur_probability, device, generator).view(n, 1, 1, 1)
        sigma = _uniform(n, *config.blur_sigma, device, generator)
        out = torch.where(blur, gaussian_blur(out, sigma, kernel_size), out)
    return out
