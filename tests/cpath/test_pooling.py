"""The MIL pooling layers: closed forms, attention that ignores padding, and that each one learns."""

from __future__ import annotations

import pytest
import torch
from himl_cpath.pooling import POOLING_NAMES, MaxPooling, MeanPooling, create_pooling

from himl_kernel.errors import HimlError

DIM = 16


def padded_bags(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three bags of 5, 2 and 7 tiles, padded to 7 with large values that must not leak into results."""
    generator = torch.Generator().manual_seed(seed)
    sizes = (5, 2, 7)
    instances = torch.full((3, 7, DIM), 1000.0)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    for row, size in enumerate(sizes):
        instances[row, :size] = torch.randn(size, DIM, generator=generator)
        mask[row, :size] = True
    return instances, mask


def test_mean_pooling_is_the_mean_of_the_real_tiles() -> None:
    instances, mask = padded_bags()
    embedding, weights = MeanPooling(DIM)(instances, mask)
    for row in range(3):
        real = instances[row, mask[row]]
        torch.testing.assert_close(embedding[row], real.mean(dim=0))
        torch.testing.assert_close(weights[row, mask[row]], torch.full((len(real),), 1 / len(real)))
    assert (weights[~mask] == 0).all()


def test_max_pooling_is_the_elementwise_max_of_the_real_tiles() -> None:
    instances, mask = padded_bags()
    embedding, weights = MaxPooling(DIM)(instances, mask)
    for row in range(3):
        real = instances[row, mask[row]]
        torch.testing.assert_close(embedding[row], real.max(dim=0).values)
        winners = real.argmax(dim=0)
        expected = torch.bincount(winners, minlength=len(real)).float() / DIM
        torch.testing.assert_close(weights[row, mask[row]], expected)
    assert (weights[~mask] == 0).all()


@pytest.mark.parametrize("name", POOLING_NAMES)
def test_weights_sum_to_one_and_padding_gets_none(name: str) -> None:
    torch.manual_seed(0)
    pooling = create_pooling(name, DIM, hidden_dim=8, num_heads=2).eval()
    instances, mask = padded_bags()
    embedding, weights = pooling(instances, mask)
    assert embedding.shape == (3, pooling.out_dim) and torch.isfinite(embedding).all()
    assert weights.shape == (3, 7)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
    assert (weights[~mask] == 0).all() and (weights >= 0).all()
    # the padding's values do not change the result
    changed = instances.clone()
    changed[~mask] = -55.0
    again, _ = pooling(changed, mask)
    torch.testing.assert_close(again, embedding)


def bag_set(count: int = 64, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bags of 4 to 12 noise tiles; a positive bag has one tile shifted along a fixed direction."""
    generator = torch.Generator().manual_seed(seed)
    instances = torch.zeros(count, 12, DIM)
    mask = torch.zeros(count, 12, dtype=torch.bool)
    labels = torch.arange(count) % 2
    direction = torch.zeros(DIM)
    direction[0] = 5.0
    for row in range(count):
        size = int(torch.randint(4, 13, (1,), generator=generator))
        instances[row, :size] = torch.randn(size, DIM, generator=generator)
        mask[row, :size] = True
        if labels[row]:
            instances[row, int(torch.randint(0, size, (1,), generator=generator))] += direction
    return instances, mask, labels


#: The transformer poolings take over 15 s to learn the bag set on two shared cores.
LEARNING = [pytest.param(name, marks=pytest.mark.slow) if "transformer" in name else name for name in POOLING_NAMES]


@pytest.mark.parametrize("name", LEARNING)
def test_each_pooling_learns_a_small_bag_set(name: str) -> None:
    torch.manual_seed(0)
    instances, mask, labels = bag_set()
    pooling = create_pooling(name, DIM, hidden_dim=16, num_heads=2)
    model = torch.nn.ModuleDict({"pool": pooling, "head": torch.nn.Linear(pooling.out_dim, 2)})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss() -> torch.Tensor:
        embedding, _ = model["pool"](instances, mask)
        return torch.nn.functional.cross_entropy(model["head"](embedding), labels)

    with torch.no_grad():
        first = float(loss())
    for _ in range(80):
        optimizer.zero_grad()
        value = loss()
        value.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    model.eval()
    with torch.no_grad():
        assert float(loss()) < 0.7 * first


def test_unknown_pooling_lists_the_known_ones() -> None:
    with pytest.raises(HimlError, match="known: attention, gated_attention"):
        create_pooling("median", DIM)
