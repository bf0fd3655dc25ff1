"""The course's activation functions and their derivatives, written out (used by the from-scratch nets)."""

from __future__ import annotations

import torch


def sigmoid(z: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-z))                      # f(z) = 1 / (1 + e^-z)


def sigmoid_prime(z: torch.Tensor) -> torch.Tensor:
    s = sigmoid(z)
    return s * (1.0 - s)                                    # f'(z) = e^-z / (1 + e^-z)^2 = f(z) (1 - f(z))


def tanh(z: torch.Tensor) -> torch.Tensor:
    return torch.tanh(z)                                    # f(z) = (1 - e^-2z) / (1 + e^-2z)


def tanh_prime(z: torch.Tensor) -> torch.Tensor:
    return 1.0 - torch.tanh(z) ** 2                         # f'(z) = 1 - f(z)^2


def relu(z: torch.Tensor) -> torch.Tensor:
    return torch.clamp(z, min=0.0)                          # f(z) = 0 for z < 0, z for z >= 0


def relu_prime(z: torch.Tensor) -> torch.Tensor:
    return (z > 0).to(z.dtype)                              # f'(z) = 0 for z < 0, 1 for z > 0 (0 at z = 0, as torch)


def softmax(z: torch.Tensor) -> torch.Tensor:
    e = torch.exp(z - z.max(dim=-1, keepdim=True).values)  # f(z_i) = e^z_i / sum_j e^z_j  (shifted for stability)
    return e / e.sum(dim=-1, keepdim=True)


# name -> (f, f'), for hidden layers
ACTIVATIONS = {
    "sigmoid": (sigmoid, sigmoid_prime),
    "tanh": (tanh, tanh_prime),
    "relu": (relu, relu_prime),
}

TORCH_ACTIVATIONS = {"sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}
