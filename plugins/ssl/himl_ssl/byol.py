"""BYOL's networks: an online encoder, projector and predictor, and a target copy moved by a moving average.

The target's decay rises from ``base_decay`` to 1 on a cosine over training
(the BYOL paper): ``tau(k) = 1 - (1 - base_decay) * (cos(pi k / K) + 1) / 2``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from himl_kernel.errors import HimlError
from himl_ssl.heads import mlp_head
from himl_ssl.losses import byol_loss


def cosine_decay(step: int, total_steps: int, base_decay: float) -> float:
    """The target network's decay at ``step`` of ``total_steps``: ``base_decay`` at 0, 1 at the end."""
    if total_steps < 1:
        raise HimlError(f"BYOL's decay schedule needs at least one step; got total_steps={total_steps}")
    progress = min(max(step, 0), total_steps) / total_steps
    return 1 - (1 - base_decay) * (math.cos(math.pi * progress) + 1) / 2


@torch.no_grad()
def update_target(online: nn.Module, target: nn.Module, decay: float) -> None:
    """``target = decay * target + (1 - decay) * online``, parameter by parameter; buffers are copied."""
    for p_target, p_online in zip(target.parameters(), online.parameters(), strict=True):
        p_target.mul_(decay).add_(p_online.detach(), alpha=1 - decay)
    for b_target, b_online in zip(target.buffers(), online.buffers(), strict=True):
        b_target.copy_(b_online)


class BYOLNetworks(nn.Module):
    """The online branch (encoder, projector, predictor) and its target copy (encoder, projector)."""

    def __init__(self, encoder: nn.Module, feature_size: int, hidden: int = 4096, projection: int = 256) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = mlp_head(feature_size, hidden, projection)
        self.predictor = mlp_head(projection, hidden, projection)
        self.target_encoder = copy.deepcopy(encoder)
        self.target_projector = copy.deepcopy(self.projector)
        for p in [*self.target_encoder.parameters(), *self.target_projector.parameters()]:
            p.requires_grad_(False)

    def online_modules(self) -> nn.ModuleList:
        """The online encoder and projector, in the order their target copies follow."""
        return nn.ModuleList([self.encoder, self.projector])

    def target_modules(self) -> nn.ModuleList:
        """The target encoder and projector."""
        return nn.ModuleList([self.target_encoder, self.target_projector])

    def loss(self, view1: Tensor, view2: Tensor) -> Tensor:
        """The symmetric BYOL loss: each view's online prediction regresses the other view's target projection."""
        p1 = self.predictor(self.projector(self.encoder(view1)))
        p2 = self.predictor(self.projector(self.encoder(view2)))
        with torch.no_grad():
            t1 = self.target_projector(self.target_encoder(view1))
            t2 = self.target_projector(self.target_encoder(view2))
        return (byol_loss(p1, t2) + byol_loss(p2, t1)) / 2

    def update_target(self, decay: float) -> None:
        """Move the target networks towards the online ones by ``1 - decay``."""
        update_target(self.online_modules(), self.target_modules(), decay)
