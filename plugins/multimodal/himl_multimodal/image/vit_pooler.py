"""BioViL-T's temporal pooler: a small transformer over the patch grids of a current and a prior image.

Parameter names follow the published checkpoint (``blocks.N.attn.proj_{q,k,v}``, ``blocks.N.mlp.fc{1,2}``,
``norm_post``, ``type_embed``). Position embeddings are fixed sines and cosines over the patch grid (DETR
style, normalised to the grid's extent) and are added, with the type embedding, to every block's input.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: Layer-norm epsilon of the published pooler.
NORM_EPS = 1e-6


def sine_grid_embedding(height: int, width: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2-D position embeddings of a ``height`` x ``width`` grid: ``(1, height*width, dim)``.

    The first half of the channels encodes the row, the second the column; positions are scaled to
    ``(0, 2*pi]`` so the embedding does not depend on the grid's size in absolute terms.
    """
    half = dim // 2
    rows = torch.arange(1, height + 1, dtype=torch.float32) / (height + 1e-6) * 2 * math.pi
    cols = torch.arange(1, width + 1, dtype=torch.float32) / (width + 1e-6) * 2 * math.pi
    index = torch.arange(half, dtype=torch.float32)
    freq = temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / half)

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos[:, None] / freq
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)

    row_emb = encode(rows)[:, None, :].expand(height, width, half)
    col_emb = encode(cols)[None, :, :].expand(height, width, half)
    return torch.cat((row_emb, col_emb), dim=2).reshape(1, height * width, 2 * half)


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate query, key and value projections (no bias) and an output projection."""

    def __init__(self, dim: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.proj_q = nn.Linear(dim, dim, bias=False)
        self.proj_k = nn.Linear(dim, dim, bias=False)
        self.proj_v = nn.Linear(dim, dim, bias=False)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        return x.reshape(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self._heads(self.proj_q(x)), self._heads(self.proj_k(x)), self._heads(self.proj_v(x))
        weights = self.attn_drop(((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1))
        mixed = (weights @ v).transpose(1, 2).reshape(batch, length, dim)
        return self.proj_drop(self.proj(mixed))  # type: ignore[no-any-return]


class FeedForward(nn.Module):
    """Two linear layers with GELU between (``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))  # type: ignore[no-any-return]


class StochasticDepth(nn.Module):
    """Drops a residual branch per sample with probability ``rate`` while training."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class PoolerBlock(nn.Module):
    """Pre-norm transformer block; position and type embeddings are added to the normalised input of attention."""

    def __init__(self, dim: int, num_heads: int, drop: float = 0.1, attn_drop: float = 0.1, drop_path: float = 0.25):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=NORM_EPS)
        self.attn = SelfAttention(dim, num_heads, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = StochasticDepth(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=NORM_EPS)
        self.mlp = FeedForward(dim, dim, drop=drop)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x) + embedding))
        return x + self.drop_path(self.mlp(self.norm2(x)))  # type: ignore[no-any-return]


class VisionTransformerPooler(nn.Module):
    """Fuses the patch grid of the current image with that of the prior one; returns the current grid's tokens."""

    def __init__(self, dim: int = 256, num_heads: int = 8, num_blocks: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([PoolerBlock(dim, num_heads) for _ in range(num_blocks)])
        self.norm_post = nn.LayerNorm(dim, eps=NORM_EPS)
        self.type_embed = nn.Parameter(torch.zeros(2, 1, dim))
        self.pos_drop = nn.Dropout(0.1)
        nn.init.trunc_normal_(self.type_embed, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """``current`` and ``previous``: ``(B, C, H, W)`` grids of the same shape; returns ``(B, C, H, W)``."""
        if previous.shape != current.shape:
            raise ValueError(f"current {tuple(current.shape)} and previous {tuple(previous.shape)} grids differ")
        batch, dim, height, width = current.shape
        length = height * width
        tokens = torch.cat([current.flatten(2).transpose(1, 2), previous.flatten(2).transpose(1, 2)], dim=1)
        position = sine_grid_embedding(height, width, dim).to(current)
        kinds = torch.cat([self.type_embed[0].expand(length, -1), self.type_embed[1].expand(length, -1)], dim=0)
        embedding = (torch.cat([position, position], dim=1) + kinds).expand(batch, -1, -1)
        x = self.pos_drop(tokens)
        for block in self.blocks:
            x = block(x, embedding)
        x = self.norm_post(x)
        fused: torch.Tensor = x[:, :length].transpose(1, 2).reshape(batch, dim, height, width)
        return fused
