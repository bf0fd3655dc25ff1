"""The MLP system: a feed-forward net, an output unit (sigmoid | softmax) and a cost (mse | sum_mse | cross_entropy)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from dlf.data.base import DataFacts
from dlf.errors import require
from dlf.metrics.solved import MarginSolved
from dlf.nets.costs import make_cost, output_unit
from dlf.nets.mlp import ScratchMLP
from dlf.systems.base import System, accuracy


class MLPSystem(System):
    """Trains an MLP on flattened inputs. A binary target gets one sigmoid output; classes get a softmax layer."""

    ACCEPTS = ("vector", "sequence", "image")
    SOLVED_MARGIN = 0.25  # a binary target is "solved" when every output is within 0.25 of it (docs/mlp.md, XOR)

    def __init__(self, net: Callable, facts: DataFacts, cost: str = "mse", output: str = "auto",
                 optimizer: Callable | None = None, scheduler: Callable | None = None):
        super().__init__(facts, optimizer, scheduler)
        require(facts.target in ("binary", "classes"),
                f"model=mlp needs labelled data (binary or classes), data={facts.name} has target '{facts.target}'")
        binary = facts.target == "binary"
        if output == "auto":
            output = "sigmoid" if binary else "softmax"
        require(output in ("sigmoid", "softmax"), f"model.output={output!r} is not known: choose auto, sigmoid or softmax")
        require(not (binary and output == "softmax"),
                f"model.output=softmax needs class labels, data={facts.name} has a binary target: use model.output=sigmoid")
        self.output = output
        self.net = net(in_features=facts.flat_features, out_features=1 if binary else facts.num_classes)
        self.impl = "scratch" if isinstance(self.net, ScratchMLP) else "torch"
        # J(z, y): the cost bound once, with its output unit (torch's, or the hand-written backward for scratch)
        self.cost = functools.partial(make_cost(cost, self.impl), cost=cost, output=output)
        self.acc = self.add_stage_metrics("acc", lambda: accuracy(None if binary else facts.num_classes))
        # {stage}/solved for a binary target: accuracy at 0.5 says "solved" while the outputs still sit near 0.5
        self.solved = self.add_stage_metrics("solved", lambda: MarginSolved(self.SOLVED_MARGIN)) if binary else {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output probabilities y_hat: [N, 1] for a binary target, [N, classes] for classes."""
        return output_unit(self.net(x.flatten(1)), self.output)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """P(y=1) [N] for a binary target (XOR), else the class probabilities [N, K]."""
        y_hat = self(x)
        return y_hat[:, 0] if self.output == "sigmoid" else y_hat

    def answer(self, x: torch.Tensor) -> torch.Tensor:
        """A binary target's probability P(y=1) (XOR: how sure the net is that x1 XOR x2 = 1), else the class."""
        y_hat = self.probabilities(x)
        return y_hat if y_hat.dim() == 1 else y_hat.argmax(-1)

    def step(self, batch, batch_idx: int, stage: str) -> torch.Tensor:
        x, y = batch
        z = self.net(x.flatten(1))                           # z: the output pre-activation (logits)
        loss = self.cost(z, y)                               # J(z, y), the configured cost
        y_hat = output_unit(z.detach(), self.output)         # y_hat = sigmoid(z) or softmax(z)
        self.update_metric(stage, self.acc[stage], y_hat, y)
        self.log_loss_and_metric(stage, loss, "acc", self.acc[stage])
        if self.solved:
            self.update_metric(stage, self.solved[stage], y_hat, y)
            self.log_at_epoch_end(f"{stage}/solved", self.solved[stage])
        return loss

    def metric_names(self) -> set[str]:
        names = self.stage_metrics("loss", "acc")  # log_loss_and_metric(stage, loss, "acc", ...) in step
        return names | self.stage_metrics("solved") if self.solved else names  # a binary target's margin "solved"
