"""hi-ml's joint image-text inference: similarity scores and phrase-grounding maps."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from himl_kernel.errors import HimlError
from himl_multimodal.image.inference import ImageInferenceEngine
from himl_multimodal.text.inference import TextInferenceEngine

#: Gaussian smoothing of the patch-grid similarity, in patches.
SIGMA = 1.5
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area", "nearest-exact")


def similarity_grid(patch_embeddings: torch.Tensor, text_embedding: torch.Tensor, sigma: float = SIGMA) -> np.ndarray:
    """Cosine similarity of each patch ``(H, W, C)`` with one text embedding ``(1, C)``, Gaussian-smoothed."""
    height, width, dim = patch_embeddings.shape
    if text_embedding.shape != (1, dim):
        raise HimlError(f"text embedding of shape {tuple(text_embedding.shape)} does not fit patches of width {dim}")
    similarity = (patch_embeddings.reshape(-1, dim) @ text_embedding.t()).reshape(height, width)
    smoothed: np.ndarray = ndimage.gaussian_filter(similarity.cpu().numpy().astype(np.float64), sigma=sigma, order=0)
    return smoothed


def convert_similarity_to_image_size(
    similarity_map: np.ndarray | torch.Tensor,
    width: int,
    height: int,
    resize_size: int | None,
    crop_size: int | None,
    interpolation: str = "nearest",
) -> np.ndarray:
    """The patch-grid map upsampled onto the original ``height`` x ``width`` image; NaN where the crop cut it away."""
    if interpolation not in _INTERPOLATIONS:
        raise HimlError(f"interpolation {interpolation!r} is not known; expected one of {', '.join(_INTERPOLATIONS)}")
    grid = torch.as_tensor(np.asarray(similarity_map), dtype=torch.float64)
    if grid.ndim != 2:
        raise HimlError(f"similarity map should be 2-D, got shape {tuple(grid.shape)}")
    shortest = min(width, height)
    side = shortest if resize_size is None or crop_size is None else int(crop_size * shortest / resize_size)
    corners = False if interpolation in ("bilinear", "bicubic") else None
    upsampled = F.interpolate(grid[None, None], size=(side, side), mode=interpolation, align_corners=corners)[0, 0]
    margin_w, margin_h = width - side, height - side
    pad = (math.floor(margin_w / 2), math.ceil(margin_w / 2), math.floor(margin_h / 2), math.ceil(margin_h / 2))
    return F.pad(upsampled, pad, value=float("nan")).numpy()


class ImageTextInferenceEngine:
    """Joins an image and a text inference engine in their shared embedding space."""

    def __init__(self, image_inference_engine: ImageInferenceEngine, text_inference_engine: TextInferenceEngine):
        self.image_inference_engine = image_inference_engine
        self.text_inference_engine = text_inference_engine

    convert_similarity_to_image_size = staticmethod(convert_similarity_to_image_size)

    def to(self, device: torch.device | str) -> None:
        """Move both models to ``device``."""
        self.image_inference_engine.to(device)
        self.text_inference_engine.to(device)

    @torch.no_grad()
    def get_similarity_score_from_raw_data(self, image_path: str | Path, query_text: str | list[str]) -> float:
        """Cosine similarity of the image with the text (several texts: their mean embedding, renormalised)."""
        image = self.image_inference_engine.get_projected_global_embedding(image_path)
        text = self.text_inference_engine.get_embeddings_from_prompt(query_text, normalize=False).mean(dim=0)
        return float(image @ F.normalize(text, dim=0))

    @torch.no_grad()
    def get_similarity_map_from_raw_data(
        self, image_path: str | Path, query_text: str, interpolation: str = "nearest"
    ) -> np.ndarray:
        """The phrase's similarity with each patch, smoothed, at the original image's size (NaN outside the crop)."""
        patches, (width, height) = self.image_inference_engine.get_projected_patch_embeddings(image_path)
        text = self.text_inference_engine.get_embeddings_from_prompt(query_text)
        grid = similarity_grid(patches, text)
        engine = self.image_inference_engine
        return convert_similarity_to_image_size(
            grid, width, height, engine.resize_size, engine.crop_size, interpolation=interpolation
        )
