"""Encoders by name: timm backbones without their classifier, never with downloaded weights.

:data:`ENCODERS` maps our names (hi-ml's ``EncoderName`` values, plus
``cifar_resnet18`` and ``cifar_resnet50``) to a timm model and whether its stem is the
CIFAR one: a 3x3 convolution of stride 1 and no max-pool, so that 32-pixel
images are not shrunk to 1x1 before the last stage. The backbone's state-dict
keys are timm's own, so an exported encoder loads into
``timm.create_model(timm_name, num_classes=0)`` (after the same stem swap).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from himl_kernel.errors import HimlError


@dataclass(frozen=True)
class EncoderSpec:
    """How to build one of our encoders with timm."""

    timm_name: str
    cifar_stem: bool = False


ENCODERS: dict[str, EncoderSpec] = {
    "resnet18": EncoderSpec("resnet18"),
    "resnet50": EncoderSpec("resnet50"),
    "resnet101": EncoderSpec("resnet101"),
    "densenet121": EncoderSpec("densenet121"),
    "cifar_resnet18": EncoderSpec("resnet18", cifar_stem=True),
    "cifar_resnet50": EncoderSpec("resnet50", cifar_stem=True),
}


def encoder_spec(name: str) -> EncoderSpec:
    """The spec of encoder ``name``; an unknown name is a one-line error listing the known ones."""
    try:
        return ENCODERS[name]
    except KeyError:
        raise HimlError(f"unknown SSL encoder {name!r}; known: {', '.join(sorted(ENCODERS))}") from None


def use_cifar_stem(model: nn.Module) -> None:
    """Swap a timm resnet's stem for the CIFAR one: 3x3 stride-1 convolution, no max-pool."""
    net: Any = model
    if not isinstance(getattr(net, "conv1", None), nn.Conv2d):
        raise HimlError(f"the CIFAR stem needs a resnet with conv1; got {type(model).__name__}")
    out_channels = int(net.conv1.out_channels)
    net.conv1 = nn.Conv2d(3, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()


def create_encoder(name: str) -> tuple[nn.Module, int]:
    """A randomly initialised backbone ``name`` returning pooled features, and its feature size."""
    import timm

    spec = encoder_spec(name)
    model = timm.create_model(spec.timm_name, pretrained=False, num_classes=0)
    if spec.cifar_stem:
        use_cifar_stem(model)
    timm_model: Any = model
    return model, int(timm_model.num_features)


def load_exported_encoder(weights: str, description: str) -> tuple[nn.Module, int]:
    """The encoder an SSL run exported (``encoder.safetensors``, ``encoder.json``), its weights loaded.

    This is the entry ``from_export`` of the named registry ``ssl_encoders``, so
    other plugins may build an exported encoder through the kernel without
    importing himl-ssl.
    """
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    content = json.loads(Path(description).read_text(encoding="utf-8"))
    architecture = content.get("architecture") if isinstance(content, dict) else None
    if not isinstance(architecture, str):
        raise HimlError(f"encoder description {description} names no architecture")
    encoder, size = create_encoder(architecture)
    try:
        encoder.load_state_dict(load_file(weights))
    except (RuntimeError, OSError) as error:
        raise HimlError(f"encoder weights {weights} do not fit {architecture}: {str(error).splitlines()[0]}") from None
    return encoder, size
