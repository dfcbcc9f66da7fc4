"""The SupCon learning-rate recipe: linear warm-up, then cosine decay, stepped once per batch."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, base_lr: float,
                  final_lr: float = 0.0) -> float:
    """Learning rate at ``step`` (0-based: the rate used by the ``step``-th optimiser update).

    Rises linearly from ``base_lr / (warmup_steps + 1)`` to ``base_lr`` over the first
    ``warmup_steps`` updates, then follows ``final_lr + (base_lr - final_lr)(1 + cos(π t)) / 2``
    with ``t`` going from 0 to 1 over the remaining updates.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / (warmup_steps + 1)
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    return final_lr + (base_lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


class WarmupCosineLR(LRScheduler):
    """:func:`warmup_cosine` as a scheduler: call ``step()`` after every optimiser step.

    Parameters
    ----------
    optimizer : Optimizer
    total_steps : int
        Optimiser updates in the whole run.
    warmup_steps : int
    final_lr_ratio : float, default=1e-3
        Final rate as a fraction of each group's initial rate (SupCon: ``lr · 0.1³``).
    """

    def __init__(self, optimizer: Optimizer, total_steps: int, warmup_steps: int,
                 final_lr_ratio: float = 1e-3, last_epoch: int = -1):
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.final_lr_ratio = float(final_lr_ratio)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [warmup_cosine(self.last_epoch, self.total_steps, self.warmup_steps, base,
                              base * self.final_lr_ratio) for base in self.base_lrs]
