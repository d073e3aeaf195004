"""BioViL and BioViL-T image models, with the published checkpoints' parameter names.

- ``encoder.encoder.*``: a torchvision ResNet (ResNet-50 for the published models, ``fc`` kept though unused);
- BioViL-T adds ``encoder.backbone_to_vit`` (1x1 conv to 256), ``encoder.vit_pooler`` and
  ``encoder.missing_previous_emb`` (the difference features used when there is no prior image);
- ``projector.model.{0,1,3}``: 1x1 conv (no bias), batch norm, ReLU, 1x1 conv into the joint space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet  # type: ignore[import-untyped]

from himl_multimodal.image.vit_pooler import VisionTransformerPooler

#: torchvision ResNets by name, with the width of their last stage.
RESNETS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "resnet152": 2048}
#: A backbone named ``timm:NAME`` is timm's model NAME (random init), its last feature map as the patch grid.
TIMM_PREFIX = "timm:"


def check_backbone(name: str) -> str:
    """``name`` if it is a ResNet of :data:`RESNETS` or ``timm:NAME`` of a model timm knows; else ValueError."""
    if name in RESNETS:
        return name
    if name.startswith(TIMM_PREFIX):
        import timm

        model = name[len(TIMM_PREFIX) :]
        if model and timm.is_model(model):
            return name
        raise ValueError(f"image backbone {name!r}: timm has no model {model!r} (see timm.list_models())")
    raise ValueError(f"image backbone {name!r} is not known; expected one of {', '.join(RESNETS)} or timm:NAME")


@dataclass
class ImageModelOutput:
    """What an image model returns for a batch."""

    img_embedding: torch.Tensor
    """Global average of the encoder's patch features, ``(B, feature_dim)``."""
    patch_embeddings: torch.Tensor
    """The encoder's patch features, ``(B, feature_dim, H, W)``."""
    projected_global_embedding: torch.Tensor
    """Mean of the projected patch embeddings, ``(B, joint_dim)`` (not normalised)."""
    projected_patch_embeddings: torch.Tensor
    """Patch embeddings in the joint space, ``(B, joint_dim, H, W)`` (not normalised)."""


def build_resnet(name: str) -> nn.Module:
    """A randomly initialised torchvision ResNet (weights come from a checkpoint, never a download)."""
    if name not in RESNETS:
        raise ValueError(f"unknown backbone {name!r}; expected one of {', '.join(RESNETS)}")
    builder = getattr(resnet, name)
    return builder(weights=None)  # type: ignore[no-any-return]


class ResNetEncoder(nn.Module):
    """Holds the ResNet as ``encoder`` and returns its last stage's feature grid."""

    def __init__(self, backbone: str = "resnet50") -> None:
        super().__init__()
        self.encoder = build_resnet(backbone)
        self.feature_dim = RESNETS[backbone]

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        net: Any = self.encoder
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        features: torch.Tensor = net.layer4(net.layer3(net.layer2(net.layer1(x))))
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone_features(x)


class TimmEncoder(nn.Module):
    """A timm model (random init) as ``encoder``, returning one stage's feature map; ``feature_dim`` is its width.

    ``stage`` counts timm's feature stages (``-1``, the last, by default): an earlier stage gives a finer patch grid
    whose patches see less of the image, and the model stops there.
    """

    def __init__(self, backbone: str, stage: int = -1) -> None:
        super().__init__()
        import timm

        name = check_backbone(backbone)[len(TIMM_PREFIX) :]
        try:
            self.encoder = timm.create_model(name, pretrained=False, features_only=True, out_indices=(stage,))
        except IndexError:
            raise ValueError(f"image backbone {backbone!r} has no feature stage {stage}") from None
        except (RuntimeError, ValueError, TypeError) as exc:  # models without a feature-map interface
            raise ValueError(f"image backbone {backbone!r}: timm cannot give its feature maps ({exc})") from None
        info: Any = self.encoder.feature_info
        self.feature_dim = int(info.channels()[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.encoder(x)[-1]
        if features.ndim != 4:
            raise ValueError(f"timm backbone gave features of shape {tuple(features.shape)}; expected (B, C, H, W)")
        return features


class MultiImageEncoder(ResNetEncoder):
    """BioViL-T's encoder: the current image's grid, fused with the change from a prior image (or a learnt stand-in)."""

    def __init__(self, backbone: str = "resnet50", vit_dim: int = 256, num_heads: int = 8, num_blocks: int = 3):
        super().__init__(backbone)
        self.backbone_to_vit = nn.Conv2d(self.feature_dim, vit_dim, kernel_size=1, bias=False)
        self.vit_pooler = VisionTransformerPooler(vit_dim, num_heads=num_heads, num_blocks=num_blocks)
        self.missing_previous_emb = nn.Parameter(torch.zeros(1, vit_dim, 1, 1))
        nn.init.trunc_normal_(self.missing_previous_emb, std=0.02)
        self.feature_dim = 2 * vit_dim

    def forward(self, x: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        batch = x.shape[0]
        if previous is None:
            grid = self.backbone_to_vit(self.backbone_features(x))
            change = self.missing_previous_emb.expand(batch, -1, grid.shape[2], grid.shape[3])
        else:
            both = self.backbone_to_vit(self.backbone_features(torch.cat([x, previous], dim=0)))
            grid = both[:batch]
            change = self.vit_pooler(grid, both[batch:])
        return torch.cat([grid, change], dim=1)


class ConvProjector(nn.Module):
    """Per-patch MLP made of 1x1 convolutions, held as ``model`` (indices 0, 1 and 3 carry weights)."""

    def __init__(self, input_dim: int, output_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(input_dim, hidden_dim, kernel_size=1, bias=False),
            nn.BatchNorm2d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, output_dim, kernel_size=1, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # type: ignore[no-any-return]


class ImageModel(nn.Module):
    """An image encoder with a projector into the joint image-text space (BioViL when ``multi_image`` is false).

    ``backbone`` is a torchvision ResNet (the published models' layout) or ``timm:NAME``, any timm model with
    feature maps (``timm:resnet18``, ``timm:efficientnet_b0``, ...), randomly initialised.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        joint_feature_size: int = 128,
        multi_image: bool = False,
        feature_stage: int = -1,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_stage = feature_stage
        self.multi_image = multi_image
        self.joint_feature_size = joint_feature_size
        check_backbone(backbone)
        encoder: ResNetEncoder | TimmEncoder
        if backbone.startswith(TIMM_PREFIX):
            if multi_image:
                raise ValueError(f"image backbone {backbone!r}: a multi-image (BioViL-T) model needs a ResNet")
            encoder = TimmEncoder(backbone, feature_stage)
        else:
            if feature_stage != -1:
                raise ValueError(f"image backbone {backbone!r}: a feature stage is chosen only for timm:NAME backbones")
            encoder = MultiImageEncoder(backbone) if multi_image else ResNetEncoder(backbone)
        self.encoder = encoder
        self.projector = ConvProjector(encoder.feature_dim, joint_feature_size, joint_feature_size)

    def forward(self, x: torch.Tensor, previous: torch.Tensor | None = None) -> ImageModelOutput:
        if previous is not None and not isinstance(self.encoder, MultiImageEncoder):
            raise ValueError("a prior image needs a multi-image (BioViL-T) model")
        patches = self.encoder(x, previous) if isinstance(self.encoder, MultiImageEncoder) else self.encoder(x)
        projected = self.projector(patches)
        return ImageModelOutput(
            img_embedding=patches.mean(dim=(2, 3)),
            patch_embeddings=patches,
            projected_global_embedding=projected.mean(dim=(2, 3)),
            projected_patch_embeddings=projected,
        )

    @torch.no_grad()
    def get_patchwise_projected_embeddings(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Projected patch embeddings as ``(B, H, W, joint_dim)``, L2-normalised per patch when ``normalize``."""
        projected = self.forward(x).projected_patch_embeddings
        if normalize:
            projected = F.normalize(projected, dim=1)
        return projected.permute(0, 2, 3, 1)
