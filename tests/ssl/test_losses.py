"""NT-Xent against the SimCLR paper's formula, and BYOL's loss, decay schedule and target update against theirs."""

from __future__ import annotations

import math

import pytest
import torch
from himl_ssl.byol import BYOLNetworks, cosine_decay, update_target
from himl_ssl.losses import byol_loss, nt_xent_loss
from torch import nn

from himl_kernel.errors import HimlError


def _nt_xent_by_formula(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """l(i, j) = -log(exp(sim(i, j)/t) / sum over k != i of exp(sim(i, k)/t)), averaged over all 2N ordered pairs."""
    z = torch.cat([z1, z2]).double()
    n = z1.shape[0]

    def sim(a: int, b: int) -> float:
        return float(z[a] @ z[b] / (z[a].norm() * z[b].norm()))

    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        denominator = sum(math.exp(sim(i, k) / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(sim(i, j) / t) / denominator)
    return total / (2 * n)


@pytest.mark.parametrize(("batch", "dim", "temperature"), [(4, 3, 0.5), (7, 16, 0.1), (2, 5, 1.0)])
def test_nt_xent_equals_the_papers_formula(batch: int, dim: int, temperature: float) -> None:
    generator = torch.Generator().manual_seed(batch * dim)
    z1 = torch.randn(batch, dim, generator=generator)
    z2 = torch.randn(batch, dim, generator=generator)
    assert float(nt_xent_loss(z1, z2, temperature)) == pytest.approx(_nt_xent_by_formula(z1, z2, temperature), rel=1e-5)


def test_nt_xent_is_small_when_views_agree_and_negatives_differ() -> None:
    z = torch.eye(6) * 10
    assert float(nt_xent_loss(z, z.clone(), 0.1)) < 1e-3
    assert float(nt_xent_loss(z, z.roll(1, dims=0), 0.1)) > 5


def test_nt_xent_rejects_bad_inputs() -> None:
    with pytest.raises(HimlError, match="temperature"):
        nt_xent_loss(torch.ones(2, 3), torch.ones(2, 3), 0.0)
    with pytest.raises(HimlError, match="one shape"):
        nt_xent_loss(torch.ones(2, 3), torch.ones(3, 3))


def test_byol_loss_is_two_minus_twice_the_cosine() -> None:
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    t = torch.tensor([[0.0, 2.0], [3.0, 3.0]])
    # cosines 0 and 1: losses 2 and 0
    assert float(byol_loss(p, t)) == pytest.approx(1.0)


def test_cosine_decay_runs_from_base_to_one() -> None:
    assert cosine_decay(0, 100, 0.99) == pytest.approx(0.99)
    assert cosine_decay(50, 100, 0.99) == pytest.approx(0.995)
    assert cosine_decay(100, 100, 0.99) == pytest.approx(1.0)
    k, total, base = 30, 100, 0.9
    assert cosine_decay(k, total, base) == pytest.approx(1 - (1 - base) * (math.cos(math.pi * k / total) + 1) / 2)
    with pytest.raises(HimlError, match="total_steps"):
        cosine_decay(0, 0, 0.99)


def test_target_update_is_the_moving_average() -> None:
    torch.manual_seed(0)
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.detach().clone() for p in target.parameters()]
    update_target(online, target, 0.9)
    for p_target, p_before, p_online in zip(target.parameters(), before, online.parameters(), strict=True):
        torch.testing.assert_close(p_target, 0.9 * p_before + 0.1 * p_online.detach())


def test_byol_gradients_reach_only_the_online_branch() -> None:
    torch.manual_seed(0)
    networks = BYOLNetworks(nn.Sequential(nn.Flatten(), nn.Linear(12, 8)), feature_size=8, hidden=16, projection=4)
    loss = networks.loss(torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2))
    loss.backward()
    assert all(p.grad is not None for p in networks.encoder.parameters())
    assert all(p.grad is None for p in networks.target_encoder.parameters())
    target_before = [p.clone() for p in networks.target_encoder.parameters()]
    networks.update_target(0.5)
    for p_target, p_before, p_online in zip(
        networks.target_encoder.parameters(), target_before, networks.encoder.parameters(), strict=True
    ):
        torch.testing.assert_close(p_target, 0.5 * p_before + 0.5 * p_online.detach())
