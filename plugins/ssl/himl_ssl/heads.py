"""The small networks on top of an encoder: SimCLR's projection head, BYOL's projector and predictor."""

from __future__ import annotations

from torch import nn


def mlp_head(in_features: int, hidden: int, out_features: int, batch_norm: bool = True) -> nn.Sequential:
    """Linear, (batch norm), ReLU, linear: the projection head of SimCLR and the projector/predictor of BYOL."""
    layers: list[nn.Module] = [nn.Linear(in_features, hidden, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden, out_features)]
    return nn.Sequential(*layers)
