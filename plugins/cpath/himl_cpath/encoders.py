"""Tile encoders: timm image models that turn a batch of tiles into feature vectors.

:func:`create_encoder` builds one of :data:`ENCODERS` with timm. It asks
the network only when told to: with ``weights`` it loads that local file (a state dict or a
checkpoint holding one, ``.pth``/``.pt``/``.ckpt``/``.bin`` or
``.safetensors``; the classifier's weights in it are ignored, and an SSL
checkpoint's encoder is found under its prefix); with ``"hub"`` it asks
timm's model hub for the pretrained weights; without either the weights are random,
drawn from ``seed`` so that the same encoder comes out every time (the
feature cache relies on that). A frozen encoder is put in eval mode and kept
there, and its parameters take no gradients.

Tiles come in as (N, 3, H, W) uint8 and are normalised with the ImageNet mean
and standard deviation the timm models were trained with.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from typing_extensions import override

from himl_kernel.errors import HimlError

#: Our encoder names and the timm model each one is.
ENCODERS = {
    "resnet18": "resnet18",
    "resnet50": "resnet50",
    "swin_tiny": "swin_tiny_patch4_window7_224",
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


class TileEncoder(nn.Module):
    """A timm backbone without its classifier, with the normalisation of uint8 tiles in front.

    Attributes:
        name: our name of the model (a key of :data:`ENCODERS`).
        num_features: the length of each tile's feature vector.
        frozen: whether the weights are fixed (eval mode, no gradients).
        identity: names the weights exactly (model, and file digest or random seed),
            so features computed with it can be cached under it.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, name: str, backbone: nn.Module, identity: str, frozen: bool) -> None:
        super().__init__()
        self.name = name
        self.backbone = backbone
        self.identity = identity
        self.frozen = frozen
        timm_model: Any = backbone
        self.num_features = int(timm_model.num_features)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0, persistent=False)
        if frozen:
            for parameter in self.backbone.parameters():
                parameter.requires_grad_(False)
            self.backbone.eval()

    @override
    def train(self, mode: bool = True) -> TileEncoder:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # keep batch-norm statistics fixed
        return self

    @override
    def forward(self, tiles: Tensor) -> Tensor:
        """Features (N, num_features) of tiles (N, 3, H, W), uint8 or float in [0, 255]."""
        images = (tiles.float() - self.mean) / self.std
        if self.frozen:
            with torch.no_grad():
                return self.backbone(images)  # type: ignore[no-any-return]
        return self.backbone(images)  # type: ignore[no-any-return]


def _encoder_prefix(state: dict[str, Tensor], own: dict[str, Tensor]) -> str:
    """The prefix under which ``state`` holds the backbone's tensors ("" when they are at the top level).

    A self-supervised checkpoint (a Lightning ``state_dict``) keeps the
    encoder under a name such as ``encoder.`` or ``model.backbone.``, next to
    projection heads; the prefix that holds every tensor of the backbone wins.
    """
    if all(key in state for key in own):
        return ""
    first = next(iter(own))
    candidates = {key[: -len(first)] for key in state if key.endswith("." + first)}
    for prefix in sorted(candidates, key=len):
        if all(prefix + key in state for key in own):
            return prefix
    return ""


def _load_weights(backbone: nn.Module, weights: Path, name: str) -> None:
    from timm.models import load_state_dict

    if not weights.is_file():
        raise HimlError(f"encoder weights {weights} do not exist")
    try:
        state = load_state_dict(str(weights))
    except Exception as exc:
        raise HimlError(f"encoder weights {weights} could not be read: {type(exc).__name__}: {exc}") from exc
    own = backbone.state_dict()
    prefix = _encoder_prefix(state, own)
    kept = {key: state[prefix + key] for key in own if prefix + key in state}
    missing = [key for key in own if key not in kept]
    if missing or not kept:
        raise HimlError(
            f"encoder weights {weights} do not fit {name}: {len(missing)} of its tensors are missing "
            f"(first: {missing[0] if missing else '-'})"
        )
    if not prefix:  # a plain state dict: anything but the classifier is a sign of the wrong model
        classifier = str(getattr(backbone, "default_cfg", {}).get("classifier", "fc"))
        stray = [key for key in state if key not in own and not key.startswith(classifier + ".")]
        if stray:
            raise HimlError(f"encoder weights {weights} hold tensors {name} does not have (first: {stray[0]})")
    try:
        backbone.load_state_dict(kept)
    except RuntimeError as exc:
        raise HimlError(f"encoder weights {weights} do not fit {name}: {str(exc).splitlines()[0]}") from exc


def _from_hub(name: str) -> tuple[nn.Module, str]:
    """The backbone with timm's pretrained weights, fetched from the model hub, and its identity."""
    import timm

    try:
        backbone = timm.create_model(ENCODERS[name], pretrained=True, num_classes=0)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HimlError(
            f"encoder {name}: timm's pretrained weights could not be fetched from the model hub ({reason}); "
            "where the network allows, download them once and pass the file with --encoder_weights"
        ) from exc
    config: Any = getattr(backbone, "pretrained_cfg", {}) or {}
    tag = str(config.get("hf_hub_id") or config.get("tag") or "default").replace("/", "_")
    return backbone, f"{name}-hub-{tag}"


def create_encoder(name: str, *, weights: Path | str | None = None, frozen: bool = True, seed: int = 0) -> TileEncoder:
    """The tile encoder ``name`` (a key of :data:`ENCODERS`).

    Its weights come from the local file ``weights``, from timm's model hub
    when ``weights`` is ``"hub"`` (which needs the network), or are random,
    drawn with ``seed``.
    """
    import timm

    if name not in ENCODERS:
        raise HimlError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}")
    if weights == "hub":
        backbone, identity = _from_hub(name)
        return TileEncoder(name, backbone, identity, frozen)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = timm.create_model(ENCODERS[name], pretrained=False, num_classes=0)
    if weights is not None:
        _load_weights(backbone, Path(weights), name)
        identity = f"{name}-{file_digest(Path(weights))}"
    else:
        identity = f"{name}-random{seed}"
    return TileEncoder(name, backbone, identity, frozen)


#: The ``format`` an SSL run's ``encoder.json`` declares (written by himl-ssl, read here without it).
SSL_EXPORT_FORMAT = "himl-ssl-encoder/1"


def read_ssl_export(description: Path) -> dict[str, Any]:
    """The fields of an SSL run's ``encoder.json`` that say which network its ``encoder.safetensors`` fits."""
    import json

    try:
        content = json.loads(description.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HimlError(f"encoder description {description} could not be read: {exc}") from None
    if not isinstance(content, dict) or content.get("format") != SSL_EXPORT_FORMAT:
        raise HimlError(f"encoder description {description} is not an SSL encoder export ({SSL_EXPORT_FORMAT})")
    for key, kind in (("architecture", str), ("timm_name", str), ("cifar_stem", bool), ("feature_size", int)):
        if not isinstance(content.get(key), kind):
            raise HimlError(f"encoder description {description}: {key} should be a {kind.__name__}")
    for key, expected in (("mean", IMAGENET_MEAN), ("std", IMAGENET_STD)):
        values = content.get(key, list(expected))
        if not isinstance(values, list) or any(abs(float(a) - b) > 1e-6 for a, b in zip(values, expected, strict=True)):
            raise HimlError(f"encoder description {description}: {key} {values} is not ImageNet's, which tiles get")
    return content


def create_encoder_from_export(weights: Path, description: Path, *, frozen: bool = True) -> TileEncoder:
    """The tile encoder an SSL run exported: the architecture ``description`` names, with ``weights``."""
    import timm
    from safetensors.torch import load_file

    export = read_ssl_export(description)
    if export["timm_name"] not in timm.list_models() and export["timm_name"] not in ENCODERS.values():
        raise HimlError(f"encoder description {description}: timm has no model {export['timm_name']!r}")
    backbone = timm.create_model(export["timm_name"], pretrained=False, num_classes=0)
    if export["cifar_stem"]:  # a 3x3 stride-1 stem and no max-pool, as himl-ssl's CIFAR encoders
        net: Any = backbone
        net.conv1 = nn.Conv2d(3, int(net.conv1.out_channels), kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    if not weights.is_file():
        raise HimlError(f"encoder weights {weights} do not exist")
    try:
        backbone.load_state_dict(load_file(str(weights)))
    except RuntimeError as exc:
        reason = str(exc).splitlines()[0]
        raise HimlError(f"encoder weights {weights} do not fit {export['architecture']}: {reason}") from None
    encoder = TileEncoder(
        str(export["architecture"]), backbone, f"{export['architecture']}-{file_digest(weights)}", frozen
    )
    if encoder.num_features != export["feature_size"]:
        raise HimlError(
            f"{description}: feature_size {export['feature_size']}, but the network gives {encoder.num_features}"
        )
    return encoder
