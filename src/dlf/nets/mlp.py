"""The multilayer perceptron: forward propagation z = a W + b, a = f(z), twice written.

* TorchMLP: nn.Linear layers, gradients from autograd.
* ScratchMLP: the same network whose backward pass is the chain rule written out by hand (a torch.autograd.Function
  whose backward uses no autograd), so any torch optimizer and Lightning's loop can train it unchanged.

Both return the output layer's pre-activation z_L ("logits"); the output unit (sigmoid or softmax) and the cost live in
dlf.nets.costs, so the cost's derivative is written out by hand too in the scratch path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlf.errors import check_impl, require
from dlf.nets.activations import ACTIVATIONS, TORCH_ACTIVATIONS


def _check(in_features, out_features, hidden, activation, init):
    require(activation in ACTIVATIONS,
            f"model.net.activation={activation!r} is not known: choose one of {', '.join(ACTIVATIONS)}")
    require(init in ("normal", "default"), f"model.net.init={init!r} is not known: choose normal or default")
    require(all(isinstance(h, int) and h > 0 for h in hidden),
            f"model.net.hidden={list(hidden)} must be a list of positive layer sizes, e.g. [5] or [100,100]")
    require(in_features > 0 and out_features > 0, "the data gave no input or output size")


class TorchMLP(nn.Module):
    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] = (5,),
                 activation: str = "sigmoid", init: str = "normal"):
        super().__init__()
        hidden = list(hidden)
        _check(in_features, out_features, hidden, activation, init)
        sizes = [in_features, *hidden, out_features]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.act = TORCH_ACTIVATIONS[activation]()
        if init == "normal":
            for lin in self.linears:
                nn.init.normal_(lin.weight)  # W ~ N(0, 1), as np.random.randn in the course
                nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x
        for i, lin in enumerate(self.linears):
            z = lin(a)
            a = self.act(z) if i < len(self.linears) - 1 else z
        return a


class _Backprop(torch.autograd.Function):
    """Forward propagation through all layers, and backpropagation by the chain rule, layer by layer.

    Notation (row-vector convention of the course): a_0 = X, z_l = a_{l-1} W_l + b_l, a_l = f(z_l); the output is z_L.
    """

    @staticmethod
    def forward(ctx, x, activation: str, *params):
        f, _ = ACTIVATIONS[activation]
        weights, biases = params[0::2], params[1::2]
        a, zs, acts = x, [], [x]
        for i, (w, b) in enumerate(zip(weights, biases)):
            z = a @ w + b                                   # z_l = a_{l-1} W_l + b_l
            zs.append(z)
            if i < len(weights) - 1:
                a = f(z)                                    # a_l = f(z_l)
                acts.append(a)
        ctx.activation = activation
        ctx.save_for_backward(*zs, *acts, *weights)
        ctx.n_layers = len(weights)
        return zs[-1]

    @staticmethod
    def backward(ctx, grad_out):
        _, f_prime = ACTIVATIONS[ctx.activation]
        n = ctx.n_layers
        saved = ctx.saved_tensors
        zs, acts, weights = saved[:n], saved[n:2 * n], saved[2 * n:]
        grads = [None] * (2 * n)
        delta = grad_out                                    # delta_L = dJ/dz_L (from the cost)
        for l in range(n - 1, -1, -1):
            grads[2 * l] = acts[l].transpose(-2, -1) @ delta  # dJ/dW_l = a_{l-1}^T delta_l
            grads[2 * l + 1] = delta.sum(dim=0)             # dJ/db_l = sum over the batch of delta_l (one shared bias)
            if l > 0:
                delta = (delta @ weights[l].transpose(-2, -1)) * f_prime(zs[l - 1])  # delta_{l-1} = delta_l W_l^T * f'(z_{l-1})
        grad_x = delta @ weights[0].transpose(-2, -1) if ctx.needs_input_grad[0] else None
        return (grad_x, None, *grads)


class ScratchMLP(nn.Module):
    """The same MLP with hand-written backpropagation. Weights are stored [in, out] as in the course (z = X W + b)."""

    FROM_SCRATCH = True  # a twin written out: no mixed precision, no torch.compile (dlf.run.speed)

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] = (5,),
                 activation: str = "sigmoid", init: str = "normal"):
        super().__init__()
        hidden = list(hidden)
        _check(in_features, out_features, hidden, activation, init)
        self.activation = activation
        sizes = [in_features, *hidden, out_features]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        # Initialise exactly as TorchMLP does (nn.Linear layers, then the same re-init, in the same order), so that
        # one seed gives both twins the same starting weights.
        linears = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        for lin in linears:
            if init == "normal":
                nn.init.normal_(lin.weight)                   # W ~ N(0, 1)
                nn.init.zeros_(lin.bias)                      # b = 0
            self.weights.append(nn.Parameter(lin.weight.detach().T.contiguous()))  # stored [in, out]: z = a W + b
            self.biases.append(nn.Parameter(lin.bias.detach().clone()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = [p for wb in zip(self.weights, self.biases) for p in wb]
        return _Backprop.apply(x, self.activation, *params)

    @torch.no_grad()
    def copy_from(self, twin: TorchMLP) -> ScratchMLP:
        """Take the weights of a TorchMLP (nn.Linear stores W^T)."""
        for w, b, lin in zip(self.weights, self.biases, twin.linears):
            w.copy_(lin.weight.T)
            b.copy_(lin.bias)
        return self


def build_mlp(in_features: int, out_features: int, impl: str = "torch", hidden: Sequence[int] = (5,),
              activation: str = "sigmoid", init: str = "normal") -> nn.Module:
    """The MLP the config asks for: impl=torch (autograd) or impl=scratch (hand-written backprop)."""
    impls = {"torch": TorchMLP, "scratch": ScratchMLP}
    check_impl(impl)
    return impls[impl](in_features, out_features, hidden=hidden, activation=activation, init=init)
