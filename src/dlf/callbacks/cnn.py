"""Seeing inside a CNN: feature maps of the first conv blocks for a fixed batch, the learned kernels of the first
layer, and the confusion matrix. Images go to TensorBoard (add_image / add_figure) and, as PNG, to <run dir>/plots/."""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.utils import make_grid

from dlf.callbacks.figures import Figures, plt, publish
from dlf.errors import require


def _tiles(maps: torch.Tensor, nrow: int | None = None) -> tuple[np.ndarray, int]:
    """[K, H, W] tiles -> one 2-D array of a near-square grid (ceil(sqrt(K)) a row unless nrow), NaN between tiles
    (drawn blank), raw values kept (one colour scale for all tiles); and the tiles a row."""
    nrow = nrow or math.ceil(math.sqrt(maps.shape[0]))
    grid = make_grid(maps.float().cpu().unsqueeze(1), nrow=nrow, padding=1, pad_value=float("nan"))
    return grid[0].numpy(), nrow


def _label_tiles(ax, k: int, nrow: int, h: int, w: int, prefix: str = "") -> None:
    """Each tile's index (its channel or filter) in its top-left corner."""
    for i in range(k):
        r, c = divmod(i, nrow)
        ax.text(1 + c * (w + 1), 1 + r * (h + 1), f"{prefix}{i}", fontsize=6, color="k", va="top", ha="left",
                bbox=dict(boxstyle="square,pad=0.05", fc="white", ec="none", alpha=0.7))


def _show_input(ax, x: torch.Tensor, label) -> None:
    """The network's input sample: a grey or RGB image, or a 1-D signal's channels as lines."""
    x = x.float().cpu()
    if x.dim() == 2:                                   # [C, L]
        for c, row in enumerate(x):
            ax.plot(row.numpy(), lw=0.8, label=f"ch {c}" if len(x) > 1 else None)
        ax.set_xlim(0, x.shape[-1] - 1)
    else:                                              # [C, H, W], shown scaled to [0, 1]
        x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
        ax.imshow(x[0].numpy() if x.shape[0] == 1 else x[:3].permute(1, 2, 0).numpy(), cmap="gray",
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(f"input {label}", fontsize=8)


def feature_map_figure(x: torch.Tensor, maps: torch.Tensor, block: int, labels=None):
    """Per input sample a row: the sample, then its feature maps of conv block `block` (2-D: a grid of the F maps, each
    numbered with its channel; 1-D: a filters x length heat map, rows = channels), all on one colour scale with a
    colour bar. x: the network's inputs [n, C, H, W] or [n, C, L]; maps: [n, F, H', W'] or [n, F, L']."""
    n, f = maps.shape[:2]
    one_d = maps.dim() == 3
    vals = maps.float().cpu()
    vmin, vmax = float(vals.min()), float(vals.max())
    vmax = vmax if vmax > vmin else vmin + 1e-6
    fig = plt.figure(figsize=(9, 2.4 * n + 0.6) if one_d else (6.5, 2.9 * n + 0.5), layout="constrained")
    axes = fig.subplots(n, 2, squeeze=False, width_ratios=[1, 2.5] if one_d else [1, 1.6])
    for i in range(n):
        label = f"#{i}" + (f" (class {int(labels[i])})" if labels is not None else "")
        _show_input(axes[i, 0], x[i], label)
        ax = axes[i, 1]
        if one_d:
            im = ax.imshow(vals[i].numpy(), aspect="auto", cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_ylabel("channel")
            ax.set_xlabel("position")
        else:
            grid, nrow = _tiles(vals[i])
            im = ax.imshow(grid, cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest")
            _label_tiles(ax, f, nrow, *vals.shape[-2:])
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title(f"block {block}: its {f} channels on input #{i}", fontsize=8)
    fig.colorbar(im, ax=axes[:, 1], shrink=0.8, label="activation")
    return fig


def kernel_figure(w: torch.Tensor):
    """The first conv layer's kernels: one tile per filter (numbered), its C input-channel kernels side by side (1-D:
    C rows of k taps), on a diverging colour map centred on 0 with one symmetric scale for all (vmin = -vmax)."""
    w = w.detach().float().cpu()
    if w.dim() == 3:                                  # [F, C, k]: a C x k tile per filter
        tiles = w
    else:                                             # [F, C, kh, kw]: the C kernels side by side, NaN between
        f, c, kh, kw = w.shape
        gap = torch.full((f, c, kh, 1), float("nan"))
        tiles = torch.cat([w, gap], -1).permute(0, 2, 1, 3).reshape(f, kh, c * (kw + 1))[..., :-1]
    vmax = max(float(w.abs().max()), 1e-12)
    h, wd = tiles.shape[-2:]
    nrow = max(1, round(math.sqrt(tiles.shape[0] * (h + 1) / (wd + 1))))  # tiles a row: a near-square grid of pixels
    grid, nrow = _tiles(tiles, nrow)
    rows = math.ceil(tiles.shape[0] / nrow)
    side = 6.5 / max(nrow * (wd + 1), rows * (h + 1))  # inches a weight
    fig, ax = plt.subplots(figsize=(max(4.5, nrow * (wd + 1) * side + 1.6), max(3.0, rows * (h + 1) * side + 0.9)),
                           layout="constrained")
    im = ax.imshow(grid, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    _label_tiles(ax, tiles.shape[0], nrow, h, wd)
    ax.set_xticks([])
    ax.set_yticks([])
    what = f"{w.shape[1]} input channel{'s' if w.shape[1] > 1 else ''} side by side" if w.dim() == 4 else \
        f"rows: {w.shape[1]} input channel(s), columns: taps"
    ax.set_title(f"block 0 kernels ({w.shape[0]} filters, numbered; {what})", fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8, label="weight (0 = white)")
    return fig


def confusion_figure(cm: torch.Tensor, title: str):
    """Counts per (true, predicted) class; at least 6.5 inches (715 pixels) a side with 11-point text, so it stays
    readable when TensorBoard's Time Series shrinks it to a card."""
    cm = cm.cpu().numpy()
    k = cm.shape[0]
    side = max(6.5, 0.55 * k + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    im = ax.imshow(cm, cmap="Blues")
    size = 11 if k <= 12 else 8
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=size,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.tick_params(labelsize=size)
    ax.set_xlabel("predicted class", fontsize=12)
    ax.set_ylabel("true class", fontsize=12)
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"{title} (accuracy {acc:.4f})", fontsize=12)
    fig.colorbar(im, ax=ax, shrink=0.8, label="samples")
    return fig


class CNNFigures(Figures):
    """when="epoch": after every validation epoch; when="end": once after fit. The test confusion matrix is drawn
    after testing either way."""

    def __init__(self, when: str = "end", num_images: int = 4, layers: int = 2):
        require(when in ("epoch", "end"), f"callbacks.cnn_figures.when={when!r} is not known: choose epoch or end")
        require(isinstance(num_images, int) and num_images > 0, "callbacks.cnn_figures.num_images must be >= 1")
        require(isinstance(layers, int) and layers > 0, "callbacks.cnn_figures.layers must be >= 1")
        self.when, self.num_images, self.layers = when, num_images, layers
        self.written: list[str] = []  # tags drawn so far (tests read it)

    @torch.no_grad()
    def draw(self, trainer, pl_module) -> None:
        dm = trainer.datamodule
        x = dm.val[0][: self.num_images].to(pl_module.device)
        net = pl_module.net
        was_training = pl_module.training
        pl_module.eval()
        x_net = pl_module.to_net_input(x)
        y = dm.val[1][: self.num_images]
        labels = y.tolist() if y.dim() == 1 else None
        for i, m in enumerate(net.features(x_net)[: self.layers]):
            fig = feature_map_figure(x_net, m, i, labels)
            publish(trainer, f"cnn/feature_maps/block{i}", fig, f"feature_maps_block{i}.png")
            self.written.append(f"cnn/feature_maps/block{i}")
        publish(trainer, "cnn/kernels/block0", kernel_figure(net.blocks[0].conv.weight), "kernels_block0.png")
        self.written.append("cnn/kernels/block0")
        if pl_module.val_confusion.update_count:
            fig = confusion_figure(pl_module.val_confusion.compute(), "Validation confusion matrix")
            publish(trainer, "cnn/confusion/val", fig, "confusion_val.png")
            self.written.append("cnn/confusion/val")
        pl_module.train(was_training)

    def on_validation_epoch_end(self, trainer, pl_module):
        if self.when == "epoch" and not trainer.sanity_checking:
            self.draw(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if self.when == "end":
            self.draw(trainer, pl_module)

    def on_test_epoch_end(self, trainer, pl_module):
        if pl_module.test_confusion.update_count:
            fig = confusion_figure(pl_module.test_confusion.compute(), "Test confusion matrix")
            publish(trainer, "cnn/confusion/test", fig, "confusion_test.png")
            self.written.append("cnn/confusion/test")
