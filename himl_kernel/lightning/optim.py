"""The optimizer and learning-rate schedule a container's fields describe.

The schedule is a factor of ``l_rate`` per epoch: an optional linear warm-up
over ``l_rate_warmup_epochs``, then the chosen decay over the remaining epochs,
never below ``min_l_rate``. It is a LambdaLR stepped once per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LambdaLR

    from himl_kernel.lightning.settings import OptimizerSettings


def build_optimizer(params: OptimizerSettings, parameters: Any) -> Optimizer:
    """The optimizer ``optimizer_type`` names, over ``parameters``."""
    import torch

    kind = params.optimizer_type
    if kind == "Adam":
        return torch.optim.Adam(
            parameters, lr=params.l_rate, betas=params.adam_betas, eps=params.opt_eps, weight_decay=params.weight_decay
        )
    if kind == "AdamW":
        return torch.optim.AdamW(
            parameters, lr=params.l_rate, betas=params.adam_betas, eps=params.opt_eps, weight_decay=params.weight_decay
        )
    if kind == "SGD":
        return torch.optim.SGD(parameters, lr=params.l_rate, momentum=params.momentum, weight_decay=params.weight_decay)
    return torch.optim.RMSprop(
        parameters, lr=params.l_rate, momentum=params.momentum, eps=params.opt_eps, weight_decay=params.weight_decay
    )


def schedule_factor(params: OptimizerSettings, max_epochs: int) -> Callable[[int], float]:
    """The factor of ``l_rate`` at each epoch.

    A plain function, not an object: LambdaLR stores an object's attributes in
    the checkpoint, and a run resumed with a larger ``max_epochs`` must follow
    the schedule of its current settings.
    """
    warmup = params.l_rate_warmup_epochs if params.l_rate_warmup == "linear" else 0
    decay_epochs = max(max_epochs - warmup, 1)
    floor = params.min_l_rate / params.l_rate
    schedule = params.l_rate_scheduler
    milestones = sorted(params.l_rate_multi_step_milestones)

    def factor(epoch: int) -> float:
        if epoch < warmup:
            return max((epoch + 1) / (warmup + 1), floor)
        t = epoch - warmup
        if schedule == "polynomial":
            value = max(1.0 - t / decay_epochs, 0.0) ** params.l_rate_polynomial_gamma
        elif schedule == "cosine":
            value = 0.5 * (1.0 + math.cos(math.pi * min(t, decay_epochs) / decay_epochs))
        elif schedule == "step":
            value = params.l_rate_step_gamma ** (t // params.l_rate_step_step_size)
        elif schedule == "multistep":
            value = params.l_rate_multi_step_gamma ** sum(1 for m in milestones if m <= t)
        elif schedule == "exponential":
            value = params.l_rate_exponential_gamma**t
        else:
            value = 1.0
        return max(float(value), floor)

    return factor


def build_scheduler(params: OptimizerSettings, optimizer: Optimizer, max_epochs: int) -> LambdaLR:
    """A per-epoch LambdaLR following the schedule fields over ``max_epochs``."""
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, schedule_factor(params, max_epochs))
