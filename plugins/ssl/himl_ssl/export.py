"""An SSL run's encoder as two files other plugins read without this one: weights and a description.

``encoder.safetensors`` holds the backbone alone, under timm's own key names
(``conv1.weight``, ``layer1.0.bn1.running_mean``...); ``encoder.json`` says how
to build the network they fit and how to feed it::

    {"format": "himl-ssl-encoder/1", "architecture": "resnet18", "timm_name": "resnet18",
     "cifar_stem": false, "feature_size": 512, "input_size": 224,
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "method": "SimCLR"}

A BYOL run gives its online encoder, always: the checkpoint's ``encoder.``
keys are the online branch, the target's are ``byol.target_encoder.``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from himl_kernel.errors import HimlError
from himl_ssl.encoders import encoder_spec

ENCODER_WEIGHTS = "encoder.safetensors"
ENCODER_JSON = "encoder.json"
FORMAT = "himl-ssl-encoder/1"
ENCODER_PREFIX = "encoder."


def encoder_description(
    architecture: str, feature_size: int, input_size: int, mean: list[float], std: list[float], method: str
) -> dict[str, Any]:
    """What ``encoder.json`` holds."""
    spec = encoder_spec(architecture)
    return {
        "format": FORMAT,
        "architecture": architecture,
        "timm_name": spec.timm_name,
        "cifar_stem": spec.cifar_stem,
        "feature_size": feature_size,
        "input_size": input_size,
        "mean": list(mean),
        "std": list(std),
        "method": method,
    }


def write_encoder_files(folder: Path, weights: dict[str, Tensor], description: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``encoder.safetensors`` and ``encoder.json`` into ``folder``; return their paths."""
    from safetensors.torch import save

    from himl_kernel.atomic import atomic_write_bytes, atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    weights_path, json_path = folder / ENCODER_WEIGHTS, folder / ENCODER_JSON
    tensors = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
    atomic_write_bytes(weights_path, save(tensors))
    atomic_write_text(json_path, json.dumps(description, indent=2) + "\n")
    return weights_path, json_path


def backbone_weights(encoder: nn.Module) -> dict[str, Tensor]:
    """The encoder's state dict, its own key names."""
    return dict(encoder.state_dict())


def export_checkpoint(checkpoint: Path, folder: Path) -> tuple[Path, Path]:
    """The encoder files of an SSL Lightning checkpoint (``himl ssl export-encoder``)."""
    if not checkpoint.is_file():
        raise HimlError(f"checkpoint {checkpoint} does not exist")
    try:
        content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:
        raise HimlError(f"{checkpoint} is not a readable checkpoint: {str(error).splitlines()[0]}") from None
    hyper = content.get("hyper_parameters", {}) if isinstance(content, dict) else {}
    state = content.get("state_dict", {}) if isinstance(content, dict) else {}
    if "encoder_name" not in hyper or not any(k.startswith(ENCODER_PREFIX) for k in state):
        raise HimlError(f"{checkpoint} is not a checkpoint of a himl-ssl run (no encoder_name, no encoder. weights)")
    weights = {k[len(ENCODER_PREFIX) :]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
    description = encoder_description(
        str(hyper["encoder_name"]),
        int(hyper["feature_size"]),
        int(hyper["image_size"]),
        list(hyper["mean"]),
        list(hyper["std"]),
        str(hyper["method"]),
    )
    return write_encoder_files(folder, weights, description)
