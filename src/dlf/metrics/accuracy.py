"""Accuracy, acc = 1/n sum_i [y_hat_i = y_i], counted by hand: the same number as torchmetrics' BinaryAccuracy and
MulticlassAccuracy(average="micro") (tests/test_speed.py checks them against each other), at a fifth of the cost.

Every classifier counts its training accuracy over each epoch (in batches of steps: dlf.metrics.queue).
torchmetrics' classification metrics check and reshape their inputs, look for logits and count true/false positives
and negatives per class on each update: about 75 µs on CPU for a batch of four, where the XOR step itself takes about
600 µs. Accuracy needs only two counts.
"""

from __future__ import annotations

import torch
import torchmetrics


class Accuracy(torchmetrics.Metric):
    """The fraction of predictions equal to their target, over every sample the epoch saw (a micro average).

    `preds`: class labels (integers), or floats: a binary target's probabilities P(y = 1), thresholded at > 0.5
    (binary=True), or a score per class along dim 1 (logits or probabilities), whose argmax is the label. `target`:
    the labels, integers or (a binary target, as XOR's y) floats 0.0 / 1.0; compared by value."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, binary: bool = False):
        super().__init__()
        self.binary = binary
        # not persistent (torchmetrics' default): no state_dict key; summed over processes under DDP
        self.add_state("correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.is_floating_point():
            preds = preds > 0.5 if self.binary else preds.argmax(dim=1)
        self.correct += (preds.reshape(-1) == target.reshape(-1)).sum()
        self.total += target.numel()

    def compute(self) -> torch.Tensor:
        return self.correct.float() / self.total
