"""Image side of the vision-language models: BioViL / BioViL-T image models, reading and preprocessing, inference."""

from __future__ import annotations

from himl_multimodal.image.inference import ImageInferenceEngine, ImageModelType, get_image_inference
from himl_multimodal.image.model import ImageModel

__all__ = ["ImageInferenceEngine", "ImageModel", "ImageModelType", "get_image_inference"]
