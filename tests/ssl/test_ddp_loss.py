"""NT-Xent under DDP: two gloo processes on half batches give the loss (and gradients) of one on the whole batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from himl_ssl.losses import nt_xent_loss

_BATCH, _DIM, _TEMPERATURE = 8, 5, 0.2


def _embeddings() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return torch.randn(_BATCH, _DIM, generator=generator), torch.randn(_BATCH, _DIM, generator=generator)


def _half_batch_worker(rank: int, world_size: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world_size)
    try:
        z1, z2 = _embeddings()
        half = _BATCH // world_size
        mine1 = z1[rank * half : (rank + 1) * half].clone().requires_grad_(True)
        mine2 = z2[rank * half : (rank + 1) * half].clone().requires_grad_(True)
        loss = nt_xent_loss(mine1, mine2, _TEMPERATURE)
        loss.backward()
        assert mine1.grad is not None and mine2.grad is not None
        torch.save({"loss": loss.detach(), "g1": mine1.grad, "g2": mine2.grad}, Path(folder) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_on_half_batches_equal_one_on_the_whole(tmp_path: Path) -> None:
    mp.spawn(_half_batch_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]

    z1, z2 = (z.clone().requires_grad_(True) for z in _embeddings())
    whole = nt_xent_loss(z1, z2, _TEMPERATURE)
    whole.backward()
    assert z1.grad is not None and z2.grad is not None

    mean_loss = (results[0]["loss"] + results[1]["loss"]) / 2
    torch.testing.assert_close(mean_loss, whole.detach())
    # Each process's backward sums the gradients of both losses (the gathered negatives carry them back);
    # DDP then averages over the two processes: the whole batch's gradient of the mean loss.
    g1 = torch.cat([results[0]["g1"], results[1]["g1"]]) / 2
    g2 = torch.cat([results[0]["g2"], results[1]["g2"]]) / 2
    torch.testing.assert_close(g1, z1.grad)
    torch.testing.assert_close(g2, z2.grad)
    # Without the gather, the halves see fewer negatives: a different loss, so the test above can fail.
    with torch.no_grad():
        local = (nt_xent_loss(z1[:4], z2[:4], _TEMPERATURE) + nt_xent_loss(z1[4:], z2[4:], _TEMPERATURE)) / 2
    assert abs(float(local) - float(whole.detach())) > 1e-3
