"""The CNN system: images [N, C, H, W] (2-D net) or signals (1-D net) -> class logits, softmax + cross-entropy cost.

Logs train/loss, {val,test}/loss and {train,val,test}/acc (torchmetrics), and keeps a confusion matrix of the current
validation (and test) epoch that dlf.callbacks.cnn draws.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchmetrics

from dlf.data.base import DataFacts
from dlf.errors import DlfError, require
from dlf.systems.base import System, accuracy


def net_input_shape(facts: DataFacts, dims: int) -> tuple[int, ...]:
    """[C, H, W] for a 2-D net, [C, L] for a 1-D net, from the data facts; one line if the two do not fit."""
    if dims == 2:
        if facts.kind != "image" or not facts.image_shape:
            raise DlfError(f"a 2-D CNN (model.net.dims=2) cannot take data={facts.name}: its samples are "
                           f"'{facts.kind}' of shape {list(facts.input_shape)}, not images [C, H, W]: pick an image "
                           "dataset (data=digits, mnist, fashion_mnist, cifar10) or model=cnn1d for signals")
        return tuple(facts.image_shape)
    if facts.kind != "sequence":
        shape = "x".join(map(str, facts.image_shape or facts.input_shape))
        raise DlfError(f"a 1-D CNN (model.net.dims=1) cannot take data={facts.name}: its samples are '{facts.kind}' "
                       f"({shape}), not signals [L] or [L, C]: use model=cnn for images, or a sequence dataset "
                       "such as data=mnist1d")
    length = facts.seq_len or facts.input_shape[0]
    return (facts.in_features or 1, length)


class CNNSystem(System):
    ACCEPTS = ("image", "sequence")

    def __init__(self, net: Callable, facts: DataFacts, optimizer: Callable | None = None,
                 scheduler: Callable | None = None, print_summary: bool = True, augment_shift: int = 0,
                 augment_flip: bool = False):
        super().__init__(facts, optimizer, scheduler)
        require(isinstance(augment_shift, int) and augment_shift >= 0,
                f"model.augment_shift={augment_shift!r} must be a whole number of pixels >= 0 (0: no augmentation)")
        self.augment_shift = augment_shift
        require(isinstance(augment_flip, bool), f"model.augment_flip={augment_flip!r} must be true or false")
        require(not augment_flip or facts.kind == "image",
                f"model.augment_flip=true mirrors images left-right: data={facts.name} holds '{facts.kind}', not "
                "images; use model.augment_flip=false")
        self.augment_flip = augment_flip
        require(facts.target == "classes" and (facts.num_classes or 0) >= 2,
                f"model=cnn classifies: data={facts.name} has target '{facts.target}', it needs class labels")
        # the net asks for the data's samples in its own layout ([C, H, W] or [C, L]), knowing its dims
        self.net = net(in_shape=functools.partial(net_input_shape, facts), num_classes=facts.num_classes)
        self.in_shape = self.net.in_shape
        self.print_summary = print_summary
        k = facts.num_classes
        self.acc = self.add_stage_metrics("acc", lambda: accuracy(k))
        # the confusion matrix of the current validation (test) epoch, drawn by dlf.callbacks.cnn
        self.confusion = self.add_stage_metrics(
            "confusion", lambda: torchmetrics.classification.MulticlassConfusionMatrix(k, validate_args=False),
            stages=("val", "test"))

    def summary_table(self) -> str | None:
        """The layer plan (what each layer does, the shape it hands on) that dlf's model summary prints instead of
        Lightning's table; None (model.print_summary=false): Lightning's."""
        return self.net.summary() if self.print_summary else None

    def to_net_input(self, x: torch.Tensor) -> torch.Tensor:
        """Signals [N, L] -> [N, 1, L]; [N, L, C] -> [N, C, L]; images pass unchanged."""
        if self.net.dims == 1:
            return x.unsqueeze(1) if x.dim() == 2 else x.transpose(1, 2)
        return x

    def shift(self, x: torch.Tensor) -> torch.Tensor:
        """Training-time augmentation: move each image by a random whole number of pixels in [-s, s] along each axis
        (zeros come in at the border); signals move along their length."""
        s, n = self.augment_shift, x.shape[0]
        xp = F.pad(x, (s, s) if x.dim() == 3 else (s, s, s, s))
        for axis in range(2, x.dim()):
            size = x.shape[axis]
            start = torch.randint(0, 2 * s + 1, (n,), device=x.device)
            idx = start[:, None] + torch.arange(size, device=x.device)       # rows start .. start + size - 1
            shape = [n] + [1] * (x.dim() - 1)
            shape[axis] = size
            idx = idx.view(shape).expand(*xp.shape[:axis], size, *xp.shape[axis + 1:])
            xp = xp.gather(axis, idx)
        return xp

    def flip(self, x: torch.Tensor) -> torch.Tensor:
        """Training-time augmentation: mirror a random half of the images left-right (clothing stays clothing; digits
        would not stay digits)."""
        mirror = torch.rand(x.shape[0], device=x.device) < 0.5
        return torch.where(mirror[:, None, None, None], x.flip(-1), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities y_hat = softmax(z)."""
        return torch.softmax(self.net(self.to_net_input(x)), dim=-1)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)

    def answer(self, x: torch.Tensor) -> torch.Tensor:
        """The class: argmax_k y_hat_k."""
        return self(x).argmax(-1)

    def step(self, batch, batch_idx: int, stage: str) -> torch.Tensor:
        x, y = batch
        x = self.to_net_input(x)
        if stage == "train" and self.augment_shift:
            x = self.shift(x)
        if stage == "train" and self.augment_flip:
            x = self.flip(x)
        z = self.net(x)
        loss = F.cross_entropy(z, y)                      # J = -1/n sum_i log softmax(z_i)[y_i]
        pred = z.detach().argmax(dim=-1)
        self.update_metric(stage, self.acc[stage], pred, y)
        if stage in self.confusion:
            self.update_metric(stage, self.confusion[stage], pred, y)
        self.log_loss_and_metric(stage, loss, "acc", self.acc[stage])
        return loss

    def metric_names(self) -> set[str]:
        return self.stage_metrics("loss", "acc")  # log_loss_and_metric(stage, loss, "acc", ...) in step

    def on_validation_epoch_start(self):
        self.val_confusion.reset()

    def on_test_epoch_start(self):
        self.test_confusion.reset()
