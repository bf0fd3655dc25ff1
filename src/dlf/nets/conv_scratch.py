"""Convolution and pooling written out: the sliding window, element-wise multiply and sum, and both backward passes.

Everything here works on 4-D tensors [N, C, H, W]; a 1-D signal [N, C, L] is the special case H = 1 (kernel 1 x k).
Notation: input x, kernel w [F, C, kh, kw] (F filters), bias b [F], stride (sh, sw), feature map y [N, F, OH, OW]:

    y[n, f, i, j] = b[f] + sum_{c, u, v} x[n, c, i*sh + u, j*sw + v] * w[f, c, u, v]

This is what the course calls convolution; strictly it is cross-correlation (the kernel is not flipped), which is also
what nn.Conv2d computes. Output size along one axis with padded length P: O = floor((P - k) / s) + 1.

Padding "valid" adds nothing and drops the windows that do not fit; padding "zero" adds zeros around the border so
that every input pixel is covered and O = ceil(n / s) (the extra zero, if the total is odd, goes on the right/bottom).
"""

from __future__ import annotations

import math

import torch


def out_size(n: int, k: int, s: int, pad: tuple[int, int] = (0, 0)) -> int:
    """Windows along one axis: O = floor((n + pad_before + pad_after - k) / s) + 1 (0 or less: nothing fits)."""
    p = n + pad[0] + pad[1]
    return (p - k) // s + 1 if p >= k else 0


def zero_pads(n: int, k: int, s: int) -> tuple[int, int]:
    """Zero padding along one axis so that O = ceil(n / s): total = max((O - 1) s + k - n, 0), split left/right."""
    o = math.ceil(n / s)
    total = max((o - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def pad2d(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """Surround x [N, C, H, W] with zeros: pads = (top, bottom, left, right)."""
    t, b, l, r = pads
    if not any(pads):
        return x
    n, c, h, w = x.shape
    out = x.new_zeros(n, c, h + t + b, w + l + r)
    out[:, :, t:t + h, l:l + w] = x
    return out


def windows(x: torch.Tensor, k: tuple[int, int], s: tuple[int, int]) -> torch.Tensor:
    """All kh x kw windows of x [N, C, H, W] at stride s, as a view [N, C, OH, OW, kh, kw] (im2col without a copy)."""
    return x.unfold(2, k[0], s[0]).unfold(3, k[1], s[1])


def scatter_windows(g: torch.Tensor, shape, s: tuple[int, int]) -> torch.Tensor:
    """The adjoint of `windows` (col2im): add each window's gradient g [N, C, OH, OW, kh, kw] back onto its pixels."""
    n, c, oh, ow, kh, kw = g.shape
    out = g.new_zeros(shape)
    for u in range(kh):
        for v in range(kw):
            # pixel (i*sh + u, j*sw + v) received x * w[u, v] in window (i, j), so it gets g[..., i, j, u, v] back
            out[:, :, u:u + (oh - 1) * s[0] + 1:s[0], v:v + (ow - 1) * s[1] + 1:s[1]] += g[..., u, v]
    return out


class Conv2dFn(torch.autograd.Function):
    """y = conv(x, w) + b with the gradients written out (no autograd inside)."""

    @staticmethod
    def forward(ctx, x, w, b, stride: tuple[int, int], pads: tuple[int, int, int, int]):
        xp = pad2d(x, pads)
        k = (w.shape[2], w.shape[3])
        cols = windows(xp, k, stride)                                     # [N, C, OH, OW, kh, kw]
        y = torch.einsum("ncijuv,fcuv->nfij", cols, w)                    # sum_{c,u,v} x[.., i s + u, j s + v] w[f,c,u,v]
        if b is not None:
            y = y + b.view(1, -1, 1, 1)                                   # + b[f]
        ctx.save_for_backward(xp, w)
        ctx.stride, ctx.pads, ctx.x_shape, ctx.has_bias = stride, pads, x.shape, b is not None
        return y

    @staticmethod
    def backward(ctx, gy):
        xp, w = ctx.saved_tensors
        k = (w.shape[2], w.shape[3])
        cols = windows(xp, k, ctx.stride)
        gw = torch.einsum("nfij,ncijuv->fcuv", gy, cols)  # dJ/dw[f,c,u,v] = sum_{n,i,j} gy * x[.., i s + u, j s + v]
        gb = gy.sum(dim=(0, 2, 3)) if ctx.has_bias else None              # dJ/db[f] = sum_{n,i,j} gy[n, f, i, j]
        gx = None
        if ctx.needs_input_grad[0]:
            gcols = torch.einsum("nfij,fcuv->ncijuv", gy, w)              # each window's share: gy[n,f,i,j] * w[f,c,u,v]
            gxp = scatter_windows(gcols, xp.shape, ctx.stride)            # summed back onto the (padded) pixels
            t, _, l, _ = ctx.pads
            h, wd = ctx.x_shape[2], ctx.x_shape[3]
            gx = gxp[:, :, t:t + h, l:l + wd]                             # padding zeros are constants: drop their part
        return gx, gw, gb, None, None


class MaxPool2dFn(torch.autograd.Function):
    """y[n, c, i, j] = max over the window at (i s, j s); the gradient flows only to the pixel that was the max."""

    @staticmethod
    def forward(ctx, x, k: tuple[int, int], s: tuple[int, int]):
        cols = windows(x, k, s)
        flat = cols.reshape(*cols.shape[:4], -1)                          # [N, C, OH, OW, kh*kw]
        y, arg = flat.max(dim=-1)                                         # y = max_{u,v} x[.., i s + u, j s + v]
        ctx.save_for_backward(arg)
        ctx.k, ctx.s, ctx.x_shape = k, s, x.shape
        return y

    @staticmethod
    def backward(ctx, gy):
        (arg,) = ctx.saved_tensors
        kh, kw = ctx.k
        g = gy.new_zeros(*gy.shape, kh * kw).scatter_(-1, arg.unsqueeze(-1), gy.unsqueeze(-1))  # dy/dx = 1 at argmax
        return scatter_windows(g.view(*gy.shape, kh, kw), ctx.x_shape, ctx.s), None, None


class AvgPool2dFn(torch.autograd.Function):
    """y[n, c, i, j] = mean over the window; every pixel of a window gets 1/(kh kw) of its gradient."""

    @staticmethod
    def forward(ctx, x, k: tuple[int, int], s: tuple[int, int]):
        ctx.k, ctx.s, ctx.x_shape = k, s, x.shape
        return windows(x, k, s).mean(dim=(-2, -1))                        # y = 1/(kh kw) sum_{u,v} x[.., i s + u, j s + v]

    @staticmethod
    def backward(ctx, gy):
        kh, kw = ctx.k
        g = (gy / (kh * kw))[..., None, None].expand(*gy.shape, kh, kw)   # dy/dx = 1/(kh kw) inside the window
        return scatter_windows(g, ctx.x_shape, ctx.s), None, None


def conv2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0)):
    return Conv2dFn.apply(x, w, b, tuple(stride), tuple(pads))


def max_pool2d(x, k, s):
    return MaxPool2dFn.apply(x, tuple(k), tuple(s))


def avg_pool2d(x, k, s):
    return AvgPool2dFn.apply(x, tuple(k), tuple(s))


# 1-D: a signal [N, C, L] is an image [N, C, 1, L]; kernel [F, C, k] is [F, C, 1, k].
def conv1d(x, w, b=None, stride: int = 1, pads=(0, 0)):
    return conv2d(x.unsqueeze(2), w.unsqueeze(2), b, (1, stride), (0, 0, *pads)).squeeze(2)


def max_pool1d(x, k: int, s: int):
    return max_pool2d(x.unsqueeze(2), (1, k), (1, s)).squeeze(2)


def avg_pool1d(x, k: int, s: int):
    return avg_pool2d(x.unsqueeze(2), (1, k), (1, s)).squeeze(2)
