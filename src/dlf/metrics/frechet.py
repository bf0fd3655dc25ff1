"""A Fréchet distance for the image GANs, in the features of a small classifier that dlf ships: FD-dlf-<data>-<d>.

It is the distance of FID (Heusel et al. 2017) between two Gaussians fitted to the features of two image sets,
    FD = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)),
but the features are not Inception's: they are the d-dimensional penultimate layer (before its ReLU) of dlf's own
CNN classifier, trained once on the data's training images (Fashion-MNIST: d = 64; the 8x8 digits, whose test split
has only ~360 images: d = 16, so that the d x d covariance is estimated from many more images than it has entries).
So its values are comparable only with each other, at one sample size N (the estimate is biased upwards at small N):
a run reports the distance of its N samples to N images of the split, beside the floor (N real training images to
the same N) and the ceiling (N images of uniform noise to the same N).

The nets ship inside the package (dlf/metrics/feature_nets/<data>.pt: a state_dict, torch.load(weights_only=True),
and <data>.json: its card with the sha256 every load checks), written by `python scripts/train_feature_nets.py`.
torchmetrics' FrechetInceptionDistance computes the distance, given the net as its `feature` module (no download).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from dlf.errors import DlfError

FOLDER = Path(__file__).resolve().parent / "feature_nets"
DIMS = {"fashion_mnist": 64, "digits": 16}         # the feature dimension of each shipped net
SHORT = {"fashion_mnist": "fashion", "digits": "digits"}


def store_dir() -> Path:
    """The folder of the shipped feature nets (FOLDER; a test points it at a copy)."""
    return FOLDER


class FeatureNet(torch.nn.Module):
    """Pixels [N, C, H, W] in [0, 1] -> features [N, dim]: conv 3x3 (32) -> ReLU -> max-pool 2, once more with 64
    channels for images of 16 pixels or more, then a linear layer to `dim` (the features). `logits` adds the
    classifier's head (ReLU -> dropout 0.3 -> linear to the classes), which only training uses."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, dim: int):
        super().__init__()
        c, h, w = image_shape
        layers: list[torch.nn.Module] = [torch.nn.Conv2d(c, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
        ch, h, w = 32, h // 2, w // 2
        if min(h, w) >= 8:
            layers += [torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
            ch, h, w = 64, h // 2, w // 2
        self.body = torch.nn.Sequential(*layers, torch.nn.Flatten(), torch.nn.Linear(ch * h * w, dim))
        self.head = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(dim, num_classes))
        self.num_features = dim  # torchmetrics reads the feature dimension from here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.float() - 0.5)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self(x))


def name(data: str) -> str:
    """The distance's name, e.g. FD-dlf-fashion-64: a Fréchet distance in dlf's features, not Inception's FID."""
    return f"FD-dlf-{SHORT.get(data, data)}-{DIMS[data]}"


def ships(data: str) -> bool:
    """Whether dlf ships a feature net for this data (its card is in the package)."""
    return (store_dir() / f"{data}.json").is_file()


def card(data: str) -> dict:
    return json.loads((store_dir() / f"{data}.json").read_text())


def load(data: str) -> FeatureNet:
    """The shipped feature net of `data`, in eval mode, its sha256 checked against its card: a missing or damaged file
    is one line that says how to get it back."""
    if not ships(data):
        raise DlfError(f"dlf ships no feature net for data={data}: the Fréchet distance exists for "
                       f"{', '.join(DIMS)}")
    info, path = card(data), store_dir() / f"{data}.pt"
    redo = f"reinstall dlf, or rebuild it with `python scripts/train_feature_nets.py {data}`"
    if not path.is_file():
        raise DlfError(f"the feature net of the Fréchet distance {info['name']}, {path}, is missing: {redo}")
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != info["sha256"]:
        raise DlfError(f"the feature net of the Fréchet distance {info['name']}, {path}, is damaged (sha256 "
                       f"{got[:12]}..., its card says {info['sha256'][:12]}...): {redo}")
    net = FeatureNet(tuple(info["image_shape"]), info["num_classes"], info["features"])
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval().requires_grad_(False)


def _metric(net: torch.nn.Module):
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(feature=net, reset_real_features=False)


@torch.no_grad()
def frechet_distance(a: torch.Tensor, b: torch.Tensor, net: torch.nn.Module | None = None) -> float:
    """FD between the sets a and b in the features net(a), net(b) (no net: a and b are the features)."""
    m = _metric(net if net is not None else _Identity(a.shape[1]))
    m.update(b, real=True)
    m.update(a, real=False)
    return float(m.compute())


class _Identity(torch.nn.Identity):
    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim


class Frechet:
    """FD of image sets to one fixed reference set of N images (its features computed once): `fd(pixels)` takes the
    first N of `pixels`; `floor(real)` is the same distance for N real images, `ceiling()` for N of uniform noise."""

    def __init__(self, net: FeatureNet, reference: torch.Tensor, noise_seed: int = 0):
        self.n, self.shape, self.noise_seed = len(reference), tuple(reference.shape[1:]), noise_seed
        self.metric = _metric(net)
        with torch.no_grad():
            self.metric.update(reference.float().cpu(), real=True)

    @torch.no_grad()
    def fd(self, pixels: torch.Tensor) -> float:
        if len(pixels) < self.n:
            raise DlfError(f"the Fréchet distance compares {self.n} images with {self.n}: got only {len(pixels)} "
                           f"samples (raise model.n_eval to at least {self.n})")
        self.metric.reset()  # the fake features only: reset_real_features=False keeps the reference's
        self.metric.update(pixels[: self.n].float().cpu(), real=False)
        return float(self.metric.compute())

    def floor(self, real: torch.Tensor) -> float:
        return self.fd(real)

    def ceiling(self) -> float:
        gen = torch.Generator().manual_seed(self.noise_seed)
        return self.fd(torch.rand(self.n, *self.shape, generator=gen))
