"""hi-ml's image inference API: ``get_image_inference`` and ``ImageInferenceEngine``, from local weights."""

from __future__ import annotations

import enum
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from himl_kernel.errors import HimlError
from himl_multimodal.image.io import load_image
from himl_multimodal.image.model import ImageModel, check_backbone
from himl_multimodal.image.transforms import BIOVIL_SIZES, BIOVIL_T_SIZES, ChestXrayTransform
from himl_multimodal.weights import read_state_dict, resolve_weights

#: The published models' backbone.
DEFAULT_BACKBONE = "resnet50"
#: Where the image model's keys sit in checkpoints this plugin's training writes.
TRAINING_PREFIX = "image_model."


class ImageModelType(str, enum.Enum):
    """The published image models."""

    BIOVIL = "biovil"
    BIOVIL_T = "biovil_t"


def _model_type(value: ImageModelType | str) -> ImageModelType:
    try:
        return ImageModelType(value.value if isinstance(value, ImageModelType) else str(value).lower())
    except ValueError:
        known = ", ".join(t.value for t in ImageModelType)
        raise HimlError(f"image_model_type {value!r} is not known; expected one of {known}") from None


class ImageInferenceEngine:
    """Reads an image, applies the model's preprocessing and returns its embeddings in the joint space."""

    def __init__(self, image_model: ImageModel, transform: ChestXrayTransform) -> None:
        self.model = image_model.eval()
        self.transform = transform
        self.resize_size = transform.resize
        self.crop_size = transform.crop_size
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> None:
        """Move the model to ``device``."""
        self.device = torch.device(device)
        self.model.to(self.device)

    def load_and_transform_input_image(self, image_path: str | Path) -> tuple[torch.Tensor, tuple[int, int]]:
        """The preprocessed batch of one ``(1, 3, crop, crop)`` and the original (width, height)."""
        image = load_image(image_path)
        tensor = self.transform(image).unsqueeze(0).to(self.device)
        return tensor, image.size

    @torch.no_grad()
    def get_projected_global_embedding(self, image_path: str | Path) -> torch.Tensor:
        """The L2-normalised global embedding ``(joint_dim,)`` of the image at ``image_path``."""
        batch, _ = self.load_and_transform_input_image(image_path)
        return F.normalize(self.model(batch).projected_global_embedding, dim=-1)[0]

    @torch.no_grad()
    def get_projected_patch_embeddings(self, image_path: str | Path) -> tuple[torch.Tensor, tuple[int, int]]:
        """L2-normalised patch embeddings ``(H, W, joint_dim)`` and the original image's (width, height)."""
        batch, size = self.load_and_transform_input_image(image_path)
        return self.model.get_patchwise_projected_embeddings(batch, normalize=True)[0], size


def _infer_joint_size(state: dict[str, object]) -> int:
    weight = state.get("projector.model.3.weight")
    if not isinstance(weight, torch.Tensor):
        raise HimlError("image weights: no projector.model.3.weight; this is not a BioViL image checkpoint")
    return int(weight.shape[0])


def saved_backbone(path: Path) -> tuple[str, int]:
    """The backbone and feature stage that training recorded beside ``path`` (``image_model.json``).

    Without that record: the published ResNet-50 and its last stage.
    """
    record = path.with_suffix(".json")
    if not record.is_file():
        return DEFAULT_BACKBONE, -1
    try:
        values = json.loads(record.read_text())
        backbone, stage = values.get("backbone"), values.get("feature_stage", -1)
    except (ValueError, AttributeError):
        backbone, stage = None, None
    if not isinstance(backbone, str) or not isinstance(stage, int):
        raise HimlError(f"image weights {path}: {record} should hold a backbone name and feature_stage; pass backbone=")
    return backbone, stage


def load_image_model(
    weights: str | Path,
    image_model_type: ImageModelType | str = ImageModelType.BIOVIL_T,
    backbone: str | None = None,
) -> ImageModel:
    """An ``ImageModel`` built for ``image_model_type`` with ``weights`` loaded with strict key matching.

    ``backbone`` None: the one recorded beside the weights by training (``image_model.json``), else ResNet-50.
    """
    kind = _model_type(image_model_type)
    path = resolve_weights(weights, "image weights")
    recorded, stage = saved_backbone(path)
    if backbone is None:
        backbone = recorded
    elif backbone != recorded:
        stage = -1
    try:
        check_backbone(backbone)
    except ValueError as exc:
        raise HimlError(str(exc)) from None
    state = read_state_dict(path, prefix=TRAINING_PREFIX)
    try:
        joint = _infer_joint_size(state)
        model = ImageModel(backbone, joint, multi_image=kind is ImageModelType.BIOVIL_T, feature_stage=stage)
    except ValueError as exc:
        raise HimlError(f"image weights {path}: {exc}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = " ".join(lines[1:3])
        raise HimlError(f"image weights {path} do not fit a {kind.value} {backbone} model: {detail}") from None
    return model.eval()


def get_image_inference(
    image_model_type: ImageModelType | str = ImageModelType.BIOVIL_T,
    weights: str | Path | None = None,
    *,
    backbone: str | None = None,
    resize: int | None = None,
    center_crop_size: int | None = None,
) -> ImageInferenceEngine:
    """An ``ImageInferenceEngine`` for BioViL or BioViL-T with ``weights`` (a file, ``RUN_ID:path`` or hub name).

    ``backbone``: the image model's ResNet or ``timm:NAME``; by default what training recorded beside the
    weights, else the published ResNet-50. The preprocessing defaults to the published models' (resize 512,
    crop 480 for BioViL, 448 for BioViL-T).
    """
    kind = _model_type(image_model_type)
    if weights is None:
        raise HimlError(
            f"get_image_inference({kind.value!r}): pass weights=PATH, the local checkpoint "
            "(biovil_image_resnet50_proj_size_128.pt or biovil_t_image_model_proj_size_128.pt)"
        )
    default_resize, default_crop = BIOVIL_SIZES if kind is ImageModelType.BIOVIL else BIOVIL_T_SIZES
    transform = ChestXrayTransform(resize or default_resize, center_crop_size or default_crop)
    return ImageInferenceEngine(load_image_model(weights, kind, backbone), transform)
