"""A configurable CNN: conv blocks (filters, kernel, stride, padding, activation, optional pooling), then a
fully-connected head that classifies. 2-D for images [N, C, H, W], 1-D for signals [N, C, L].

impl=torch uses nn.Conv2d / nn.MaxPool2d / nn.AvgPool2d (and the 1-D ones); impl=scratch uses the sliding-window
versions of dlf.nets.conv_scratch (forward and backward written out). Both keep the same parameter names and shapes
(blocks.<i>.conv.weight [F, C, kh, kw], blocks.<i>.conv.bias [F]), so a state_dict moves between them unchanged.
The head (nn.Linear layers) is the MLP of dlf.nets.mlp's torch form in both.

Every size is planned before a layer is built: a kernel or pooling window larger than its (padded) input, or a stride
that leaves no output, stops start-up with one line naming the layer and the sizes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dlf.errors import DlfError, check_impl, require
from dlf.nets import conv_scratch as cs
from dlf.nets.activations import ACTIVATIONS, TORCH_ACTIVATIONS

BLOCK_KEYS = {"filters", "kernel", "stride", "padding", "norm", "activation", "pool", "pool_size", "pool_stride"}
NORMS = (None, "none", "batch")


def _pair(v, dims: int, what: str) -> tuple[int, int]:
    """An int or [h, w] as (h, w); in 1-D an int k means (1, k)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return (1, v) if dims == 1 else (v, v)
    v = list(v)
    require(dims == 2 and len(v) == 2 and all(isinstance(a, int) for a in v),
            f"{what}={v} must be an integer{' or [height, width]' if dims == 2 else ''}")
    return v[0], v[1]


def _fmt(p: tuple[int, int], dims: int) -> str:
    return str(p[1]) if dims == 1 else f"{p[0]}x{p[1]}"


def plan(in_shape: Sequence[int], dims: int, blocks: Sequence) -> list[dict]:
    """The shape table: every block checked against the size of its input, and its output sizes worked out. One dict
    per block, which ConvBlock builds from and CNN.summary prints. 1-D sizes are planned as 1 x L."""
    require(dims in (1, 2), f"model.net.dims={dims!r} must be 1 (signals) or 2 (images)")
    c, h, w = (in_shape[0], 1, in_shape[1]) if dims == 1 else tuple(in_shape)
    specs = []
    for i, b in enumerate(dict(raw) for raw in blocks):
        name, unknown = f"model.net.blocks[{i}]", sorted(set(b) - BLOCK_KEYS)
        require(not unknown, f"{name} has unknown keys {unknown}: use {sorted(BLOCK_KEYS)}")
        f, padding, act, pool = b.get("filters"), b.get("padding", "zero"), b.get("activation", "relu"), b.get("pool")
        require(isinstance(f, int) and f > 0, f"{name}.filters={f!r} must be a positive integer")
        k, s = _pair(b.get("kernel", 3), dims, f"{name}.kernel"), _pair(b.get("stride", 1), dims, f"{name}.stride")
        require(min(k) >= 1, f"{name}.kernel={_fmt(k, dims)} must be at least 1")
        require(min(s) >= 1, f"{name}.stride={_fmt(s, dims)} leaves no output (the window must move by at least one "
                             "pixel): use stride >= 1")
        require(act in ACTIVATIONS, f"{name}.activation={act!r} is not known: choose one of {', '.join(ACTIVATIONS)}")
        norm = b.get("norm")
        require(norm in NORMS, f"{name}.norm={norm!r} is not known: choose batch (batch norm after the conv) or none")
        if padding == "zero":  # output = ceil(input / stride); an odd total puts the extra zero right/bottom
            pads = (*cs.zero_pads(h, k[0], s[0]), *cs.zero_pads(w, k[1], s[1]))
        elif padding == "valid" or (isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0):
            n = 0 if padding == "valid" else padding
            pads = (0, 0, n, n) if dims == 1 else (n, n, n, n)  # (top, bottom, left, right)
        else:
            raise DlfError(f"{name}.padding={padding!r} is not known: choose zero, valid or a number of pixels")
        padded = (h + pads[0] + pads[1], w + pads[2] + pads[3])
        require(k[0] <= padded[0] and k[1] <= padded[1],
                f"{name} (conv): kernel {_fmt(k, dims)} is larger than its input {_fmt((h, w), dims)} (padded "
                f"{_fmt(padded, dims)}, padding {padding}): use a smaller kernel, padding=zero or fewer "
                "downsampling layers before it")
        h, w = cs.out_size(h, k[0], s[0], pads[:2]), cs.out_size(w, k[1], s[1], pads[2:])  # floor((n+p-k)/s) + 1
        spec = dict(index=i, in_channels=c, filters=f, kernel=k, stride=s, padding=padding, pads=pads,
                    norm=None if norm == "none" else norm, activation=act, conv_out=(f, h, w), pool=None)
        c = f
        if pool is not None:
            require(pool in ("max", "avg"), f"{name}.pool={pool!r} is not known: choose max, avg or null")
            pk = _pair(b.get("pool_size", 2), dims, f"{name}.pool_size")
            ps = _pair(b.get("pool_stride") or b.get("pool_size", 2), dims, f"{name}.pool_stride")
            require(min(pk) >= 1 and min(ps) >= 1,
                    f"{name}: pool_size={_fmt(pk, dims)} and pool_stride={_fmt(ps, dims)} must be at least 1")
            require(pk[0] <= h and pk[1] <= w,
                    f"{name} ({pool} pool): window {_fmt(pk, dims)} is larger than its input {_fmt((h, w), dims)}: "
                    "use a smaller pool_size, drop this pool, or downsample less before it")
            h, w = cs.out_size(h, pk[0], ps[0]), cs.out_size(w, pk[1], ps[1])
            spec.update(pool=pool, pool_size=pk, pool_stride=ps, pool_out=(c, h, w))
        specs.append(spec)
    return specs


class _ExtraPad:
    """An uneven zero padding (one more zero on the right/bottom) is added with F.pad before the torch convolution."""

    extra: tuple[int, ...] | None = None

    def forward(self, x):
        return super().forward(F.pad(x, self.extra) if self.extra else x)


class TorchConv1d(_ExtraPad, nn.Conv1d):
    pass


class TorchConv2d(_ExtraPad, nn.Conv2d):
    pass


def torch_conv(dims: int, cin: int, cout: int, k, s, pads) -> nn.Module:
    """nn.Conv1d / nn.Conv2d with the planned padding (even padding is the layer's own `padding=`)."""
    t, b, l, r = pads
    even = t == b and l == r
    if dims == 1:
        conv = TorchConv1d(cin, cout, k[1], stride=s[1], padding=l if even else 0)
        conv.extra = None if even else (l, r)
    else:
        conv = TorchConv2d(cin, cout, k, stride=s, padding=(t, l) if even else 0)
        conv.extra = None if even else (l, r, t, b)
    return conv


class ScratchConv(nn.Module):
    """The same layer by the sliding multiply-and-sum of conv_scratch (initialised as nn.Conv: U(-1/sqrt(fan_in), ..))."""

    FROM_SCRATCH = True  # a twin written out: no mixed precision, no torch.compile (dlf.run.speed)

    def __init__(self, dims: int, cin: int, cout: int, k, s, pads):
        super().__init__()
        self.dims, self.stride, self.pads = dims, s, pads
        shape = (cout, cin, k[1]) if dims == 1 else (cout, cin, *k)
        bound = 1.0 / math.sqrt(cin * k[0] * k[1])
        self.weight = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(cout).uniform_(-bound, bound))

    def forward(self, x):
        if self.dims == 1:
            return cs.conv1d(x, self.weight, self.bias, self.stride[1], self.pads[2:])
        return cs.conv2d(x, self.weight, self.bias, self.stride, self.pads)


class ScratchPool(nn.Module):
    """Max or average pooling by conv_scratch's windows."""

    FROM_SCRATCH = True

    def __init__(self, kind: str, dims: int, k, s):
        super().__init__()
        self.kind, self.dims, self.k, self.s = kind, dims, k, s

    def forward(self, x):
        if self.dims == 1:
            fn = cs.max_pool1d if self.kind == "max" else cs.avg_pool1d
            return fn(x, self.k[1], self.s[1])
        fn = cs.max_pool2d if self.kind == "max" else cs.avg_pool2d
        return fn(x, self.k, self.s)


class ScratchActivation(nn.Module):
    """The activation function as dlf.nets.activations writes it."""

    FROM_SCRATCH = True

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.f = ACTIVATIONS[name][0]

    def forward(self, x):
        return self.f(x)


def _torch_pool(kind: str, dims: int, k, s) -> nn.Module:
    if dims == 1:
        return (nn.MaxPool1d if kind == "max" else nn.AvgPool1d)(k[1], s[1])
    return (nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(k, s)


class ConvBlock(nn.Module):
    """conv -> (batch norm) -> activation -> (pool)."""

    def __init__(self, spec: dict, dims: int, impl: str):
        super().__init__()
        args = (dims, spec["in_channels"], spec["filters"], spec["kernel"], spec["stride"], spec["pads"])
        self.conv = torch_conv(*args) if impl == "torch" else ScratchConv(*args)
        if spec["norm"] == "batch":  # torch only: CNN refuses norm with impl=scratch
            self.norm = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(spec["filters"])
        else:
            self.norm = nn.Identity()
        act = spec["activation"]
        self.act = TORCH_ACTIVATIONS[act]() if impl == "torch" else ScratchActivation(act)
        if spec["pool"] is None:
            self.pool = nn.Identity()
        elif impl == "torch":
            self.pool = _torch_pool(spec["pool"], dims, spec["pool_size"], spec["pool_stride"])
        else:
            self.pool = ScratchPool(spec["pool"], dims, spec["pool_size"], spec["pool_stride"])

    def forward(self, x):
        return self.pool(self.act(self.norm(self.conv(x))))


class CNN(nn.Module):
    """blocks (conv -> (batch norm) -> activation -> pool) ... -> flatten -> [linear -> activation -> dropout] ...
    -> linear (logits)."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, impl: str = "torch", dims: int = 2,
                 blocks: Sequence = (), hidden: Sequence[int] = (), activation: str = "relu", dropout: float = 0.0):
        super().__init__()
        check_impl(impl)
        require(len(blocks) > 0, "model.net.blocks is empty: give at least one conv block, e.g. [{filters: 16}]")
        hidden = list(hidden or [])
        require(all(isinstance(n, int) and n > 0 for n in hidden),
                f"model.net.hidden={hidden} must be a list of positive layer sizes, e.g. [128] or []")
        require(activation in ACTIVATIONS,
                f"model.net.activation={activation!r} is not known: choose one of {', '.join(ACTIVATIONS)}")
        require(0.0 <= dropout < 1.0, f"model.net.dropout={dropout} must be in [0, 1)")
        require(len(in_shape) == dims + 1, f"a {dims}-D CNN needs samples shaped {'[C, L]' if dims == 1 else '[C, H, W]'}, "
                                           f"got {list(in_shape)}")
        self.impl, self.dims, self.in_shape = impl, dims, tuple(in_shape)
        self.specs = plan(in_shape, dims, blocks)
        normed = [sp["index"] for sp in self.specs if sp["norm"]]
        require(impl == "torch" or not normed,
                f"model.net.blocks{normed} ask for norm=batch, which impl=scratch does not have: use "
                "model.net.impl=torch, or norm: none in every block")
        self.blocks = nn.ModuleList(ConvBlock(sp, dims, impl) for sp in self.specs)
        last = self.specs[-1]
        c, h, w = last["pool_out"] if last["pool"] else last["conv_out"]
        sizes = [c * h * w, *hidden, num_classes]
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(TORCH_ACTIVATIONS[activation]() if impl == "torch" else ScratchActivation(activation))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        self.head = nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature map after each block's activation (before pooling), for plots."""
        maps = []
        for blk in self.blocks:
            a = blk.act(blk.norm(blk.conv(x)))
            maps.append(a)
            x = blk.pool(a)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.head(x)

    def summary(self) -> str:
        """The shape table printed at start-up (by dlf.callbacks.summary): each layer, what it does, the shape it hands
        on and its parameter count."""
        d, count = self.dims, lambda m: str(sum(p.numel() for p in m.parameters()))
        shape = lambda t: "x".join(map(str, (t[0], t[2]) if d == 1 else t))  # noqa: E731
        rows = [("layer", "what", "output", "params"),
                ("input", "", shape((self.in_shape[0], 1, self.in_shape[1]) if d == 1 else self.in_shape), "")]
        for sp, blk in zip(self.specs, self.blocks):
            pad = sp["padding"] if isinstance(sp["padding"], str) else f"{sp['padding']} px"
            if sp["padding"] == "zero" and any(sp["pads"]):
                pad += f" {tuple(sp['pads'][2:] if d == 1 else sp['pads'])}"
            rows.append((f"blocks.{sp['index']}.conv", f"conv {_fmt(sp['kernel'], d)} x {sp['filters']} filters, stride "
                         f"{_fmt(sp['stride'], d)}, padding {pad}, {sp['activation']}", shape(sp["conv_out"]),
                         count(blk.conv)))
            if sp["norm"]:
                rows.append((f"blocks.{sp['index']}.norm", "batch norm (per feature map)", shape(sp["conv_out"]),
                             count(blk.norm)))
            if sp["pool"]:
                rows.append((f"blocks.{sp['index']}.pool", f"{sp['pool']} pool {_fmt(sp['pool_size'], d)}, stride "
                             f"{_fmt(sp['pool_stride'], d)}", shape(sp["pool_out"]), "0"))
        linears = [(j, m) for j, m in enumerate(self.head) if isinstance(m, nn.Linear)]
        rows.append(("head.flatten", "flatten", str(linears[0][1].in_features), "0"))
        rows += [(f"head.{j}", f"linear {m.in_features} -> {m.out_features}", str(m.out_features), count(m))
                 for j, m in linears]
        widths = [max(len(r[k]) for r in rows) for k in range(4)]
        lines = ["  ".join(v.ljust(wd) for v, wd in zip(r, widths)).rstrip() for r in rows]
        return "\n".join([f"CNN ({d}-D, impl={self.impl}): {int(count(self)):,} parameters", lines[0],
                          "-" * len(lines[0]), *lines[1:]])


def build_cnn(in_shape: Sequence[int] | Callable[[int], Sequence[int]], num_classes: int, impl: str = "torch",
              dims: int = 2, blocks: Sequence = (), hidden: Sequence[int] = (), activation: str = "relu",
              dropout: float = 0.0) -> CNN:
    """The CNN the config asks for; `in_shape` ([C, H, W] or [C, L]) and `num_classes` come from the data.
    `in_shape` may be a function of `dims` (the system's: the data's samples in the layout of a 1-D or 2-D net)."""
    if callable(in_shape):
        in_shape = in_shape(dims)
    return CNN(in_shape, num_classes, impl=impl, dims=dims, blocks=blocks, hidden=hidden, activation=activation,
               dropout=dropout)
