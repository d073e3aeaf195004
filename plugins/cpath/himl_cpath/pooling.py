"""Pooling layers of multiple-instance learning: a bag of tile embeddings becomes one slide embedding.

Every layer takes a padded batch of bags, ``instances`` of shape (B, N, D),
and ``mask`` of shape (B, N), True where a row is a real tile and False where
it is padding (every bag needs at least one real tile). It returns the bag
embeddings (B, out_dim) and the weight of each instance, (B, N): each row sums
to one, and padding gets zero. For the attention layers the weight is the
attention itself; for :class:`MeanPooling` it is uniform; for
:class:`MaxPooling` it is the share of feature dimensions whose maximum the
instance holds.

- :class:`AttentionPooling` and :class:`GatedAttentionPooling`: Ilse, Tomczak
  and Welling, "Attention-based deep multiple instance learning", ICML 2018.
- :class:`MeanPooling`, :class:`MaxPooling`: the classic, parameter-free poolings.
- :class:`TransformerPooling`: a learnt class token is prepended to the bag and
  passed through transformer layers; its output is the embedding, and its
  attention over the tiles in the last layer (mean over heads) the weights.
- :class:`TransformerAttentionPooling`: Myronenko et al., "Accounting for
  dependencies in deep learning based multiple instance learning for whole
  slide imaging", MICCAI 2021: transformer layers let tiles see each other,
  their output is added to the input, and attention pooling reduces the bag.

:func:`create_pooling` builds one by name (:data:`POOLING_NAMES`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from typing_extensions import override

from himl_kernel.errors import HimlError

POOLING_NAMES = ("attention", "gated_attention", "mean", "max", "transformer", "transformer_attention")


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last dimension of ``scores`` (B, N) with padding (mask False) given zero weight."""
    filled = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(filled, dim=-1)


class BagPooling(nn.Module):
    """The interface: ``forward(instances (B, N, D), mask (B, N)) -> (embedding (B, out_dim), weights (B, N))``."""

    out_dim: int

    @override
    def forward(self, instances: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class MeanPooling(BagPooling):
    """The mean of the real instances."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.out_dim = in_dim

    @override
    def forward(self, instances: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        weights = mask.to(instances.dtype)
        weights = weights / weights.sum(dim=1, keepdim=True)
        return torch.einsum("bn,bnd->bd", weights, instances), weights


class MaxPooling(BagPooling):
    """The element-wise maximum over the real instances."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.out_dim = in_dim

    @override
    def forward(self, instances: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        filled = instances.masked_fill(~mask[..., None], float("-inf"))
        pooled, winners = filled.max(dim=1)  # (B, D) each
        counts = torch.zeros(mask.shape, dtype=instances.dtype, device=instances.device)
        counts.scatter_add_(1, winners, torch.ones_like(pooled))
        return pooled, counts / instances.shape[-1]


class AttentionPooling(BagPooling):
    """Ilse et al.'s attention: ``a_k = softmax_k(w^T tanh(V h_k))``, embedding ``sum_k a_k h_k``."""

    def __init__(self, in_dim: int, hidden_dim: int = 128) -> None:
        super().__init__()
        self.out_dim = in_dim
        self.score = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, 1))

    @override
    def forward(self, instances: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        weights = masked_softmax(self.score(instances).squeeze(-1), mask)
        return torch.einsum("bn,bnd->bd", weights, instances), weights


class GatedAttentionPooling(BagPooling):
    """Ilse et al.'s gated attention: ``w^T (tanh(V h_k) * sigmoid(U h_k))`` as the score."""

    def __init__(self, in_dim: int, hidden_dim: int = 128) -> None:
        super().__init__()
        self.out_dim = in_dim
        self.value = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.Tanh())
        self.gate = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.Sigmoid())
        self.weight = nn.Linear(hidden_dim, 1)

    @override
    def forward(self, instances: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        scores = self.weight(self.value(instances) * self.gate(instances)).squeeze(-1)
        weights = masked_softmax(scores, mask)
        return torch.einsum("bn,bnd->bd", weights, instances), weights


class _AttentionLayer(nn.Module):
    """A post-norm transformer encoder layer that also returns its self-attention (mean over heads)."""

    def __init__(self, dim: int, heads: int, feedforward: int, dropout: float) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.feedforward = nn.Sequential(
            nn.Linear(dim, feedforward), nn.GELU(), nn.Dropout(dropout), nn.Linear(feedforward, dim)
        )
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    @override
    def forward(self, tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        attended, weights = self.attention(
            tokens, tokens, tokens, key_padding_mask=~mask, need_weights=True, average_attn_weights=True
        )
        tokens = self.norm1(tokens + self.dropout(attended))
        tokens = self.norm2(tokens + self.dropout(self.feedforward(tokens)))
        return tokens, weights


def _check_heads(dim: int, heads: int) -> None:
    if dim % heads:
        raise HimlError(f"transformer pooling: the feature size {dim} is not a multiple of the {heads} heads")


class TransformerPooling(BagPooling):
    """Transformer layers over a class token and the bag; the class token's output is the embedding.

    The weights are the class token's attention to the tiles in the last
    layer, averaged over heads and renormalised over the tiles (the token's
    attention to itself is left out).
    """

    def __init__(
        self, in_dim: int, num_layers: int = 2, num_heads: int = 4, feedforward_dim: int = 256, dropout: float = 0.1
    ) -> None:
        super().__init__()
        _check_heads(in_dim, num_heads)
        self.out_dim = in_dim
        self.class_token = nn.Parameter(torch.zeros(1, 1, in_dim))
        nn.init.normal_(self.class_token, std=0.02)
        self.layers = nn.ModuleList(
            [_AttentionLayer(in_dim, num_heads, feedforward_dim, dropout) for _ in range(num_layers)]
        )

    @override
    def forward(self, instances: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        batch = instances.shape[0]
        tokens = torch.cat([self.class_token.expand(batch, -1, -1), instances], dim=1)
        full_mask = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        attention = torch.zeros(batch, tokens.shape[1], tokens.shape[1], device=instances.device)
        for layer in self.layers:
            tokens, attention = layer(tokens, full_mask)
        to_tiles = attention[:, 0, 1:] * mask
        weights = to_tiles / to_tiles.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return tokens[:, 0], weights


class TransformerAttentionPooling(BagPooling):
    """Myronenko et al. 2021: ``h' = h + Transformer(h)``, then Ilse attention pooling of ``h'``."""

    def __init__(
        self,
        in_dim: int,
        num_layers: int = 2,
        num_heads: int = 4,
        feedforward_dim: int = 256,
        hidden_dim: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        _check_heads(in_dim, num_heads)
        self.out_dim = in_dim
        self.layers = nn.ModuleList(
            [_AttentionLayer(in_dim, num_heads, feedforward_dim, dropout) for _ in range(num_layers)]
        )
        self.attention = AttentionPooling(in_dim, hidden_dim)

    @override
    def forward(self, instances: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        tokens = instances
        for layer in self.layers:
            tokens, _ = layer(tokens, mask)
        return self.attention(instances + tokens, mask)  # type: ignore[no-any-return]


def create_pooling(
    name: str, in_dim: int, hidden_dim: int = 128, num_layers: int = 2, num_heads: int = 4
) -> BagPooling:
    """The pooling layer called ``name`` (one of :data:`POOLING_NAMES`) for ``in_dim``-wide instances."""
    if name == "attention":
        return AttentionPooling(in_dim, hidden_dim)
    if name == "gated_attention":
        return GatedAttentionPooling(in_dim, hidden_dim)
    if name == "mean":
        return MeanPooling(in_dim)
    if name == "max":
        return MaxPooling(in_dim)
    if name == "transformer":
        return TransformerPooling(in_dim, num_layers, num_heads, feedforward_dim=2 * hidden_dim)
    if name == "transformer_attention":
        return TransformerAttentionPooling(
            in_dim, num_layers, num_heads, feedforward_dim=2 * hidden_dim, hidden_dim=hidden_dim
        )
    raise HimlError(f"unknown pooling {name!r}; known: {', '.join(POOLING_NAMES)}")
