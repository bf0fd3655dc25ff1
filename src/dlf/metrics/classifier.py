"""A small image classifier that scores generated images (which classes a GAN covers), trained once and cached.

It is dlf's own MLP (dlf.nets.mlp, 2 hidden ReLU layers of 256) trained with Adam on the data module's labelled
training images, seeded, so every run gets the same classifier; its weights are cached as a plain state_dict under
the data dir (`<data_dir>/gan_scorers/<dataset name>_<n train images>_mlp.pt`) and loaded with weights_only=True.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from dlf.errors import require
from dlf.faults import atomic_write
from dlf.nets.mlp import build_mlp

HIDDEN = [256, 256]


def _net(in_features: int, num_classes: int) -> torch.nn.Module:
    return build_mlp(in_features, num_classes, impl="torch", hidden=HIDDEN, activation="relu", init="default")


def train_classifier(x: torch.Tensor, y: torch.Tensor, num_classes: int, epochs: int = 30, batch_size: int = 128,
                     seed: int = 0) -> torch.nn.Module:
    """Mini-batch Adam (lr 1e-3) on flattened images; deterministic for a given seed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = _net(x[0].numel(), num_classes)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = x.flatten(1).float(), y.long()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def load_or_train(cache: str | os.PathLike | None, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                  epochs: int = 30) -> torch.nn.Module:
    """The cached classifier if `cache` exists, else train one on (x, y) and write it to `cache` atomically."""
    require(y is not None and num_classes, "the image GAN's class score needs labelled images (data with classes)")
    net = _net(x[0].numel(), num_classes)
    path = Path(cache) if cache else None
    if path is not None and path.is_file():
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return net.eval()
    net = train_classifier(x, y, num_classes, epochs=epochs)
    if path is not None:
        with atomic_write(path) as f:
            torch.save(net.state_dict(), f)
    return net


@torch.no_grad()
def accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((net(x.flatten(1).float()).argmax(1) == y).float().mean())
