"""Two-dimensional Gaussian mixtures, the standard test of mode collapse in GANs (VEEGAN, PacGAN, Unrolled GAN).

* ring: 8 Gaussians with centres on a circle of radius 1 at angles 2*pi*k/8 (k = 0..7), std 0.01 each.
* grid: 25 Gaussians with centres on {-4,-2,0,2,4} x {-4,-2,0,2,4}, std 0.05 each.

Each sample picks a mode uniformly and adds N(0, std^2 I). The points are drawn from `data_seed` in a few
milliseconds, so they are regenerated each run instead of cached (the same seed gives the same tensors).
The mode centres and the std go into facts.extra, where the GAN's mode-coverage metrics read them.
"""

from __future__ import annotations

import math

import torch

from dlf.data.base import DataFacts, InMemoryDataModule
from dlf.errors import require


def ring_centres(modes: int = 8, radius: float = 1.0) -> torch.Tensor:
    """[modes, 2] centres (r cos(2 pi k / modes), r sin(2 pi k / modes))."""
    angles = 2 * math.pi * torch.arange(modes, dtype=torch.float64) / modes
    return (radius * torch.stack([angles.cos(), angles.sin()], 1)).float()


def grid_centres(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    """[side^2, 2] centres on a square grid centred at 0, e.g. {-4,-2,0,2,4}^2 for side 5, spacing 2."""
    ticks = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)


def sample_mixture(centres: torch.Tensor, std: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """n points: a uniformly chosen centre plus Gaussian noise of standard deviation `std`."""
    k = torch.randint(len(centres), (n,), generator=generator)
    return centres[k] + std * torch.randn(n, centres.shape[1], generator=generator)


class MixtureDataModule(InMemoryDataModule):
    """Unlabelled 2-D points from a Gaussian mixture: train/val/test sets drawn independently from one seed.

    n_train is the number of training points per epoch (with batch 256, 256,000 points = 1,000 steps an epoch).
    """

    NAME = "mixture"

    def __init__(self, std: float, n_train: int = 256_000, n_val: int = 2_500, n_test: int = 2_500,
                 batch_size: int = 256, data_seed: int = 0, seed: int = 0):
        super().__init__(batch_size=batch_size, seed=seed)
        require(isinstance(std, (int, float)) and std > 0, f"data.std={std!r} must be a positive number, e.g. 0.01")
        for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            require(isinstance(n, int) and n > 0, f"data.{name}={n!r} must be a positive integer")
        self.std, self.n_train, self.n_val, self.n_test, self.data_seed = float(std), n_train, n_val, n_test, data_seed

    def centres(self) -> torch.Tensor:
        raise NotImplementedError

    def build(self) -> None:
        c = self.centres()
        g = torch.Generator().manual_seed(int(self.data_seed))
        self.train, self.val, self.test = ((sample_mixture(c, self.std, n, g),)
                                           for n in (self.n_train, self.n_val, self.n_test))
        self.facts = DataFacts(name=self.NAME, kind="points", target="none", input_shape=(2,), in_features=2,
                               extra={"centres": c.tolist(), "std": self.std})


class RingDataModule(MixtureDataModule):
    NAME = "ring"

    def __init__(self, modes: int = 8, radius: float = 1.0, std: float = 0.01, **kw):
        require(isinstance(modes, int) and modes > 0, f"data.modes={modes!r} must be a positive integer, e.g. 8")
        require(radius > 0, f"data.radius={radius!r} must be positive, e.g. 1.0")
        super().__init__(std=std, **kw)
        self.modes, self.radius = modes, float(radius)

    def centres(self) -> torch.Tensor:
        return ring_centres(self.modes, self.radius)


class GridDataModule(MixtureDataModule):
    NAME = "grid"

    def __init__(self, side: int = 5, spacing: float = 2.0, std: float = 0.05, **kw):
        require(isinstance(side, int) and side > 0, f"data.side={side!r} must be a positive integer, e.g. 5")
        require(spacing > 0, f"data.spacing={spacing!r} must be positive, e.g. 2.0")
        super().__init__(std=std, **kw)
        self.side, self.spacing = side, float(spacing)

    def centres(self) -> torch.Tensor:
        return grid_centres(self.side, self.spacing)
