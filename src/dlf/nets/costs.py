"""Output units and costs, computed from the output pre-activation z (logits), in torch and from-scratch forms.

mse:           y_hat = sigmoid(z),  J = 1/(2n) sum_i (y_i - y_hat_i)^2      (the course's cost, averaged over samples)
sum_mse:       y_hat = sigmoid(z),  J = 1/2 sum_i (y_i - y_hat_i)^2         (the course's XOR code: summed)
cross_entropy: y_hat = softmax(z),  J = -1/n sum_i log y_hat_i[y_i]         (classes)
               y_hat = sigmoid(z),  J = -1/n sum_i [y log y_hat + (1-y) log(1-y_hat)]   (binary target)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlf.errors import require
from dlf.nets.activations import sigmoid, sigmoid_prime, softmax

COSTS = ("mse", "sum_mse", "cross_entropy")


def output_unit(z: torch.Tensor, output: str) -> torch.Tensor:
    """y_hat from z: sigmoid (binary, or one value per output) or softmax (a distribution over classes)."""
    return torch.sigmoid(z) if output == "sigmoid" else torch.softmax(z, dim=-1)


def torch_cost(z: torch.Tensor, y: torch.Tensor, cost: str, output: str) -> torch.Tensor:
    """The cost with torch's functions; autograd differentiates it."""
    n = z.shape[0]
    if cost in ("mse", "sum_mse"):
        y_hat = output_unit(z, output)
        target = y if output == "sigmoid" else F.one_hot(y, z.shape[-1]).to(z.dtype)
        total = 0.5 * ((target - y_hat) ** 2).sum()
        return total / n if cost == "mse" else total
    if output == "sigmoid":
        return F.binary_cross_entropy_with_logits(z, y)
    return F.cross_entropy(z, y)


class _ScratchCost(torch.autograd.Function):
    """J(z, y) with dJ/dz written out (the first factor of every chain rule in the course)."""

    @staticmethod
    def forward(ctx, z, y, cost: str, output: str):
        n = z.shape[0]
        scale = 1.0 / n if cost in ("mse", "cross_entropy") else 1.0
        if output == "sigmoid":
            y_hat = sigmoid(z)
            target = y
        else:
            y_hat = softmax(z)
            target = torch.zeros_like(z).scatter_(-1, y.unsqueeze(-1), 1.0)   # one-hot y
        if cost in ("mse", "sum_mse"):
            j = 0.5 * ((target - y_hat) ** 2).sum() * scale           # J = 1/(2n) sum (y - y_hat)^2
        elif output == "sigmoid":
            eps = torch.finfo(z.dtype).tiny
            j = -(target * torch.log(y_hat + eps) + (1 - target) * torch.log(1 - y_hat + eps)).sum() * scale
        else:
            j = -(target * torch.log(y_hat.clamp_min(torch.finfo(z.dtype).tiny))).sum() * scale
        ctx.save_for_backward(z, target, y_hat)
        ctx.cost, ctx.output, ctx.scale = cost, output, scale
        return j

    @staticmethod
    def backward(ctx, grad_j):
        z, target, y_hat = ctx.saved_tensors
        if ctx.cost in ("mse", "sum_mse"):
            d_yhat = -(target - y_hat)                              # dJ/dy_hat = -(y - y_hat)
            if ctx.output == "sigmoid":
                dz = d_yhat * sigmoid_prime(z)                      # dy_hat/dz = sigmoid'(z)
            else:                                                   # softmax Jacobian-vector product
                dz = y_hat * (d_yhat - (d_yhat * y_hat).sum(dim=-1, keepdim=True))
        else:
            dz = y_hat - target                                     # sigmoid+BCE and softmax+CE: y_hat - y
        return grad_j * dz * ctx.scale, None, None, None


def scratch_cost(z: torch.Tensor, y: torch.Tensor, cost: str, output: str) -> torch.Tensor:
    return _ScratchCost.apply(z, y, cost, output)


def make_cost(cost: str, impl: str):
    require(cost in COSTS, f"model.cost={cost!r} is not known: choose one of {', '.join(COSTS)}")
    return scratch_cost if impl == "scratch" else torch_cost
