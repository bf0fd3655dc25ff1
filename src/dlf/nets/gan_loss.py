"""The GAN objectives, written as the course writes them, from the discriminator's logits s (D = sigmoid(s)).

Discriminator (gradient *ascent* in the course):
    max_d  1/m sum_i [ log D(x_i) + log(1 - D(G(z_i))) ]
  we minimise its negative:  L_D = -1/m sum_i [ log D(x_i) + log(1 - D(G(z_i))) ]
Generator, the course's minimax form:
    min_g  L_G = 1/m sum_i log(1 - D(G(z_i)))
Generator, the non-saturating form (Goodfellow et al. 2014, sec. 3): maximise log D(G(z)), i.e.
    min_g  L_G = -1/m sum_i log D(G(z_i))
Both generator losses push D(G(z)) up. When D easily rejects the fakes (D(G(z)) ~ 0, early in training) the
minimax gradient dL_G/ds = -D(G(z)) vanishes, while the non-saturating one, -(1 - D(G(z))), stays near -1.

Two implementations (config `impl`):
* torch:   log D = logsigmoid(s), log(1 - D) = logsigmoid(-s): finite for any logit.
* scratch: D = 1 / (1 + e^-s), then log D and log(1 - D) literally, with the derivatives written out by hand
           (d log D / ds = 1 - D,  d log(1 - D) / ds = -D); D is clamped away from 0 and 1 only inside the log.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlf.errors import check_impl, require
from dlf.nets.activations import sigmoid

G_LOSSES = ("minimax", "non_saturating")


class _LogD(torch.autograd.Function):
    """log D(s) (sign=+1) or log(1 - D(s)) (sign=-1) with D = sigmoid(s), and its derivative by hand."""

    @staticmethod
    def forward(ctx, s: torch.Tensor, sign: int):
        d = sigmoid(s)                                              # D = 1 / (1 + e^-s)
        ctx.save_for_backward(d)
        ctx.sign = sign
        tiny = torch.finfo(s.dtype).tiny
        if sign > 0:
            return torch.log(d.clamp_min(tiny))                    # log D
        return torch.log((1.0 - d).clamp_min(tiny))                # log(1 - D)

    @staticmethod
    def backward(ctx, grad_out):
        (d,) = ctx.saved_tensors
        if ctx.sign > 0:
            return grad_out * (1.0 - d), None                       # d log D / ds = 1 - D
        return grad_out * (-d), None                                # d log(1 - D) / ds = -D


def log_d(s: torch.Tensor, impl: str = "torch") -> torch.Tensor:
    """log D(x) from the logit s."""
    return F.logsigmoid(s) if impl == "torch" else _LogD.apply(s, 1)


def log_one_minus_d(s: torch.Tensor, impl: str = "torch") -> torch.Tensor:
    """log(1 - D(x)) from the logit s (1 - sigmoid(s) = sigmoid(-s))."""
    return F.logsigmoid(-s) if impl == "torch" else _LogD.apply(s, -1)


def discriminator_loss(s_real: torch.Tensor, s_fake: torch.Tensor, impl: str = "torch") -> torch.Tensor:
    """L_D = -( 1/m sum log D(x_i) + 1/m sum log(1 - D(G(z_i))) ): minimising it is the course's ascent for D."""
    return -(log_d(s_real, impl).mean() + log_one_minus_d(s_fake, impl).mean())


def generator_loss(s_fake: torch.Tensor, kind: str = "non_saturating", impl: str = "torch") -> torch.Tensor:
    """minimax: L_G = 1/m sum log(1 - D(G(z_i)))   |   non_saturating: L_G = -1/m sum log D(G(z_i))."""
    if kind == "minimax":
        return log_one_minus_d(s_fake, impl).mean()                 # min_g E_z[log(1 - D(G(z)))]
    return -log_d(s_fake, impl).mean()                              # max_g E_z[log D(G(z))]


def check(kind: str, impl: str) -> None:
    require(kind in G_LOSSES, f"model.g_loss={kind!r} is not known: choose minimax or non_saturating")
    check_impl(impl, "model.impl")
