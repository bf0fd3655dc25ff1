"""'Solved' with a margin: accuracy at the 0.5 threshold calls outputs of 0.48/0.51/0.55/0.47 a perfect XOR; docs/mlp.md
calls XOR solved only when every output is within 0.25 of its target (y_hat < 0.25 for a 0, > 0.75 for a 1)."""

from __future__ import annotations

import torch
import torchmetrics


class MarginSolved(torchmetrics.Metric):
    """1.0 when every output of the epoch is within `margin` of its target, max_i |y_i - y_hat_i| < margin; else 0.0.
    Over a training epoch the weights move, so train/solved asks it of every step's outputs (the worst one counts)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, margin: float = 0.25):
        super().__init__()
        self.margin = margin
        self.add_state("worst", default=torch.tensor(0.0), dist_reduce_fx="max")  # not persistent: no state_dict key

    def update(self, y_hat: torch.Tensor, y: torch.Tensor) -> None:
        err = (y_hat.reshape(-1).float() - y.reshape(-1).float()).abs()  # |y - y_hat| per output
        self.worst = torch.maximum(self.worst, err.max())

    def compute(self) -> torch.Tensor:
        return (self.worst < self.margin).float()
