"""Learning-rate schedules that torch builds from more than one scheduler: here, a warm-up then a cosine decay.

A schedule option of configs/scheduler/ is a `_partial_` that a system calls with the optimizer (and `total_iters`,
the optimizer steps it spans: System.schedule_length, or each of the GAN's optimizers' own steps). Single torch
schedulers (LinearLR, ReduceLROnPlateau) are named there directly; this module only joins torch's own.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from dlf.errors import require


def warmup_cosine(optimizer: Optimizer, total_iters: int, warmup: float = 0.05, start_factor: float = 0.01,
                  eta_min: float = 0.0) -> LRScheduler:
    """torch's LinearLR then CosineAnnealingLR, joined by SequentialLR, over `total_iters` optimizer steps t:

        w = round(warmup * T)                                                  warm-up steps (T = total_iters)
        lr_t = lr * (f + (1 - f) * t / w)                          for t < w   (LinearLR, f = start_factor)
        lr_t = eta_min + (lr - eta_min) * (1 + cos(pi * (t - w) / (T - w))) / 2   for t >= w (CosineAnnealingLR)

    so the rate climbs from f * lr to lr, then follows half a cosine down to eta_min at step T. warmup=0: the cosine
    alone."""
    require(isinstance(warmup, (int, float)) and 0 <= warmup < 1,
            f"scheduler.warmup={warmup!r} is the share of the run spent warming up: set a number in [0, 1), e.g. 0.05")
    require(isinstance(start_factor, (int, float)) and 0 < start_factor <= 1,
            f"scheduler.start_factor={start_factor!r} must be in (0, 1]: set e.g. scheduler.start_factor=0.01")
    total = max(1, int(total_iters))
    w = int(round(warmup * total))
    cosine = CosineAnnealingLR(optimizer, T_max=max(1, total - w), eta_min=eta_min)
    if w == 0:
        return cosine
    ramp = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=w)
    return SequentialLR(optimizer, [ramp, cosine], milestones=[w])
