"""One factory per encoder name, the entries of the ``ssl_encoders`` named registry.

Each returns ``(module, feature size)`` with random weights, as
:func:`himl_ssl.encoders.create_encoder` does for its name.
"""

from __future__ import annotations

from torch import nn

from himl_ssl.encoders import create_encoder


def resnet18() -> tuple[nn.Module, int]:
    return create_encoder("resnet18")


def resnet50() -> tuple[nn.Module, int]:
    return create_encoder("resnet50")


def resnet101() -> tuple[nn.Module, int]:
    return create_encoder("resnet101")


def densenet121() -> tuple[nn.Module, int]:
    return create_encoder("densenet121")


def cifar_resnet18() -> tuple[nn.Module, int]:
    return create_encoder("cifar_resnet18")


def cifar_resnet50() -> tuple[nn.Module, int]:
    return create_encoder("cifar_resnet50")
