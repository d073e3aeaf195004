"""The contrastive and bootstrap losses of SimCLR and BYOL.

Under DDP, :func:`nt_xent_loss` compares each process's embeddings with those
of every process: the others' embeddings are gathered *with* their gradients,
so the gradient of a negative reaches the process that computed it. The mean of
the processes' losses is then the loss of one process on the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from himl_kernel.errors import HimlError


def _world() -> tuple[int, int]:
    """(rank, world size) of the default process group, or (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` of every process along dim 0, in rank order, keeping gradients to all of them.

    Without a process group it returns ``tensor`` itself. Every process must
    pass a tensor of the same shape.
    """
    _, world_size = _world()
    if world_size == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor), dim=0)  # type: ignore[no-untyped-call]


def nt_xent_loss(z1: Tensor, z2: Tensor, temperature: float = 0.1, gather: bool = True) -> Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy of two views.

    ``z1[i]`` and ``z2[i]`` are projections of two views of sample ``i``; every
    other projection in the (global) batch is a negative. Each of the ``2B``
    local projections is a query whose logits are its cosine similarities,
    divided by ``temperature``, to all ``2N`` global projections but itself; the
    loss is the mean cross-entropy of picking its positive.

    Args:
        z1: ``(B, D)`` projections of the first views on this process.
        z2: ``(B, D)`` projections of the second views, same order.
        temperature: the softmax temperature, above 0.
        gather: take negatives from all processes (DDP); False: this process's only.
    """
    if temperature <= 0:
        raise HimlError(f"NT-Xent temperature must be above 0; got {temperature}")
    if z1.shape != z2.shape or z1.ndim != 2:
        shapes = f"{tuple(z1.shape)}, {tuple(z2.shape)}"
        raise HimlError(f"NT-Xent needs two (batch, dim) tensors of one shape; got {shapes}")
    q1 = F.normalize(z1, dim=1)
    q2 = F.normalize(z2, dim=1)
    batch = q1.shape[0]
    rank = _world()[0] if gather else 0
    k1 = gather_with_grad(q1) if gather else q1
    k2 = gather_with_grad(q2) if gather else q2
    total = k1.shape[0]
    keys = torch.cat([k1, k2], dim=0)  # (2N, D): first views of all processes, then second views
    queries = torch.cat([q1, q2], dim=0)  # (2B, D)
    logits = queries @ keys.T / temperature
    local = torch.arange(batch, device=z1.device) + rank * batch
    self_index = torch.cat([local, local + total])
    positive = torch.cat([local + total, local])
    rows = torch.arange(2 * batch, device=z1.device)
    logits = logits.masked_fill(
        torch.zeros_like(logits, dtype=torch.bool).index_put_((rows, self_index), torch.tensor(True)),
        float("-inf"),
    )
    return F.cross_entropy(logits, positive)


def byol_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """BYOL's regression loss, ``2 - 2 cos(prediction, target)``, averaged over the batch; no gradient to target."""
    p = F.normalize(prediction, dim=1)
    t = F.normalize(target.detach(), dim=1)
    return (2 - 2 * (p * t).sum(dim=1)).mean()
