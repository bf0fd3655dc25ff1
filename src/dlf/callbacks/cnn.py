"""Seeing inside a CNN: feature maps of the first conv blocks for a fixed batch, the learned kernels of the first
layer, and the confusion matrix. Images go to TensorBoard (add_image / add_figure) and, as PNG, to <run dir>/plots/."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.utils import make_grid, save_image

from dlf.callbacks.figures import Figures, plt, publish, run_dir, tensorboard
from dlf.errors import require


def _grid(maps: torch.Tensor, nrow: int | None = None, min_side: int = 48, stretch: bool = False) -> torch.Tensor:
    """make_grid of [K, C, H, W] tiles, each scaled to [0, 1] on its own, small tiles enlarged (nearest) to be seen;
    nrow=None: ceil(sqrt(K)) tiles a row, a near-square grid (TensorBoard shows an image at a fixed size: a long strip
    of tiles becomes unreadable). stretch=True enlarges each axis on its own (1-D heat maps: filters x length), so a
    25 x 10 map becomes a square tile."""
    if maps.shape[-2] == 1:  # a 1-D tile: make it a strip a few pixels high
        maps = maps.expand(-1, -1, 4, -1)
    h, w = maps.shape[-2:]
    up = lambda n: max(1, math.ceil(min_side / max(n, 1)))  # noqa: E731 - whole-number factor to reach min_side
    sh, sw = (up(h), up(w)) if stretch else (up(min(h, w)),) * 2
    if sh > 1 or sw > 1:
        maps = F.interpolate(maps, size=(h * sh, w * sw), mode="nearest")
    nrow = nrow or math.ceil(math.sqrt(maps.shape[0]))
    return make_grid(maps.float().cpu(), nrow=nrow, padding=2, normalize=True, scale_each=True, pad_value=1.0)


def _grid_of_grids(groups: torch.Tensor) -> torch.Tensor:
    """[G, K, C, H, W] -> a near-square grid of G near-square grids of K tiles each (e.g. G images x K feature maps:
    each image's maps stay together), separated by a wider grey border."""
    inner = torch.stack([_grid(g) for g in groups])
    return make_grid(inner, nrow=math.ceil(math.sqrt(len(inner))), padding=6, pad_value=0.5)


def confusion_figure(cm: torch.Tensor, title: str):
    cm = cm.cpu().numpy()
    k = cm.shape[0]
    fig, ax = plt.subplots(figsize=(0.45 * k + 2.5, 0.45 * k + 2))
    ax.imshow(cm, cmap="Blues")
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"{title} (accuracy {acc:.4f})")
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

    def _image(self, trainer, tag: str, img: torch.Tensor, png: str) -> None:
        tb = tensorboard(trainer)
        if tb is not None:
            tb.add_image(tag, img, global_step=trainer.global_step)
        if trainer.is_global_zero:
            path = run_dir(trainer) / "plots" / png
            path.parent.mkdir(parents=True, exist_ok=True)
            save_image(img, path)
        self.written.append(tag)

    @torch.no_grad()
    def draw(self, trainer, pl_module) -> None:
        dm = trainer.datamodule
        x = dm.val[0][: self.num_images].to(pl_module.device)
        net = pl_module.net
        was_training = pl_module.training
        pl_module.eval()
        maps = net.features(pl_module.to_net_input(x))
        for i, m in enumerate(maps[: self.layers]):
            if net.dims == 1:                      # [n, F, L]: per image one heat-map tile, rows = filters
                grid = _grid(m.unsqueeze(1), stretch=True)
            else:                                  # [n, F, H, W]: per image a grid of its F maps
                grid = _grid_of_grids(m.unsqueeze(2))
            self._image(trainer, f"cnn/feature_maps/block{i}", grid, f"feature_maps_block{i}.png")
        w = net.blocks[0].conv.weight.detach()
        if net.dims == 1:                          # [F, C, k]: one tile per filter, C rows of k taps
            grid = _grid(w.unsqueeze(1), stretch=True)
        elif w.shape[1] in (1, 3):                 # grey or RGB kernels as they are
            grid = _grid(w)
        else:                                      # per filter a grid of its C channel kernels
            grid = _grid_of_grids(w.unsqueeze(2))
        self._image(trainer, "cnn/kernels/block0", grid, "kernels_block0.png")
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
