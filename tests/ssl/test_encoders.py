"""The encoders by name: each builds offline, gives pooled features of the stated size, with timm's key names."""

from __future__ import annotations

import pytest
import timm
import torch
from himl_ssl.encoders import ENCODERS, create_encoder, use_cifar_stem

from himl_kernel.errors import HimlError


@pytest.mark.parametrize(
    ("name", "features"),
    [("resnet18", 512), ("resnet50", 2048), ("resnet101", 2048), ("densenet121", 1024), ("cifar_resnet18", 512)],
)
def test_each_encoder_gives_pooled_features(name: str, features: int) -> None:
    encoder, size = create_encoder(name)
    assert size == features
    encoder.eval()
    with torch.no_grad():
        out = encoder(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, features)


def test_the_cifar_stem_keeps_the_resolution_of_small_images() -> None:
    cifar, _ = create_encoder("cifar_resnet18")
    stem_out = cifar.conv1(torch.rand(1, 3, 32, 32))  # type: ignore[operator]
    assert stem_out.shape[-1] == 32
    assert isinstance(cifar.maxpool, torch.nn.Identity)


def test_state_dict_keys_are_timms_own() -> None:
    encoder, _ = create_encoder("cifar_resnet18")
    reference = timm.create_model("resnet18", pretrained=False, num_classes=0)
    use_cifar_stem(reference)
    reference.load_state_dict(encoder.state_dict())  # strict: every key and shape matches


def test_an_unknown_encoder_lists_the_known_ones() -> None:
    with pytest.raises(HimlError, match=r"unknown SSL encoder 'resnet9'.*densenet121"):
        create_encoder("resnet9")
    assert set(ENCODERS) >= {"resnet18", "resnet50", "resnet101", "densenet121"}
