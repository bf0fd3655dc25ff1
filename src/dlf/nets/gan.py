"""Generator and discriminator networks. The GAN system (dlf.systems.gan) builds one pair from the config.

G(z; theta_g): noise z [N, latent_dim] -> a sample shaped like the data ([N, 2] points or [N, C, H, W] images).
D(x; theta_d): a sample -> one logit s per sample; D(x) = sigmoid(s) is the probability that x is real.
The losses (dlf.nets.gan_loss) take the logit s, not D(x), so that log D and log(1 - D) stay finite.

* mlp:   fully connected nets for any data (images are flattened for D and reshaped after G).
* dcgan: a small DCGAN-style pair for square images (8x8 digits, 28x28 MNIST): transposed convolutions that double
         the size in G, strided convolutions that halve it in D, batch norm in G, LeakyReLU(0.2) in D.

* scale s (mlp only): G(z) = s * net(z) and D(x) = net(x / s), so both nets work at unit scale (the grid's
  {-4..4}^2 is s = 4) where the default init and Adam's step sizes fit; s = 1 changes nothing.

Two remedies for mode collapse act on D only:
* pack=m (PacGAN, Lin et al. 2018): D judges m samples at once, concatenated along the first feature axis (points
  [m*2], images [m*C, H, W]); the system packs the batch (dlf.systems.gan.GANSystem.pack_d).
* spectral_norm (Miyato et al. 2018): every Linear/Conv2d weight of D is divided by its largest singular value
  (torch.nn.utils.parametrizations.spectral_norm, one power iteration per forward), so D is 1-Lipschitz per layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlf.errors import require

ACTS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh}
OUTPUTS = {"linear": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def _mlp(sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTS[activation]())
    return nn.Sequential(*layers)


def _check_mlp(hidden, activation):
    require(activation in ACTS, f"activation={activation!r} is not known: choose one of {', '.join(ACTS)}")
    require(len(hidden) > 0 and all(isinstance(h, int) and h > 0 for h in hidden),
            f"hidden={list(hidden)} must be a non-empty list of positive layer sizes, e.g. [128,128,128]")


class Standardize(nn.Module):
    """Pixels in [0, 1] -> the data's space, (x - mean) / std per channel, as the data module standardises its real
    images (torchvision data); the statistics are the data's, not learned and not saved (non-persistent buffers)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std.to(x.device) + self.mean.to(x.device)


class MLPGenerator(nn.Module):
    """z -> hidden layers -> a flat sample -> reshaped to `sample_shape`; the output unit fits the data's range."""

    def __init__(self, latent_dim: int, sample_shape: Sequence[int], hidden: Sequence[int] = (128, 128, 128),
                 activation: str = "relu", output: str = "linear", scale: float = 1.0):
        super().__init__()
        hidden = list(hidden)
        _check_mlp(hidden, activation)
        require(output in OUTPUTS, f"output={output!r} is not known: choose one of {', '.join(OUTPUTS)}")
        self.scale = float(scale)
        self.sample_shape = tuple(int(d) for d in sample_shape)
        flat = 1
        for d in self.sample_shape:
            flat *= d
        self.net = _mlp([latent_dim, *hidden, flat], activation)
        self.out = OUTPUTS[output]()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.scale * self.out(self.net(z))).reshape(len(z), *self.sample_shape)   # s * net(z)


class MLPDiscriminator(nn.Module):
    """x (flattened) -> hidden layers -> one logit s; D(x) = sigmoid(s)."""

    def __init__(self, sample_shape: Sequence[int], hidden: Sequence[int] = (128, 128, 128),
                 activation: str = "relu", scale: float = 1.0):
        super().__init__()
        hidden = list(hidden)
        _check_mlp(hidden, activation)
        self.scale = float(scale)
        flat = 1
        for d in sample_shape:
            flat *= int(d)
        self.net = _mlp([flat, *hidden, 1], activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1) / self.scale)[:, 0]                                    # net(x / s)


def _stages(image_shape: Sequence[int]) -> tuple[int, int]:
    """How many times a square image can be halved down to a base size <= 7 (8 -> 4: 1 stage, 28 -> 7: 2 stages)."""
    c, h, w = (int(d) for d in image_shape)
    require(h == w and h >= 4, f"the dcgan nets need square images of side >= 4, the data has {c}x{h}x{w}: use net=mlp")
    stages, side = 0, h
    while side % 2 == 0 and side > 7:
        side //= 2
        stages += 1
    require(stages >= 1, f"the dcgan nets need an even image side, the data has {h}x{w}: use net=mlp")
    return stages, side


class DCGANGenerator(nn.Module):
    """z -> Linear -> [width * 2^stages, s, s] -> (ConvTranspose2d 4x4/2, BatchNorm, ReLU) per stage -> 3x3 conv."""

    def __init__(self, latent_dim: int, sample_shape: Sequence[int], width: int = 32, output: str = "sigmoid"):
        super().__init__()
        require(output in OUTPUTS, f"output={output!r} is not known: choose one of {', '.join(OUTPUTS)}")
        stages, side = _stages(sample_shape)
        ch = width * 2 ** stages
        self.base = (ch, side, side)
        self.project = nn.Sequential(nn.Linear(latent_dim, ch * side * side), nn.BatchNorm1d(ch * side * side),
                                     nn.ReLU())
        ups: list[nn.Module] = []
        for _ in range(stages):
            ups += [nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1), nn.BatchNorm2d(ch // 2), nn.ReLU()]
            ch //= 2
        self.up = nn.Sequential(*ups)
        self.to_image = nn.Conv2d(ch, int(sample_shape[0]), 3, padding=1)
        self.out = OUTPUTS[output]()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).reshape(len(z), *self.base)
        return self.out(self.to_image(self.up(h)))


class DCGANDiscriminator(nn.Module):
    """x -> (Conv2d 4x4 stride 2, LeakyReLU 0.2) per stage, doubling the channels -> Linear -> one logit."""

    def __init__(self, sample_shape: Sequence[int], width: int = 32):
        super().__init__()
        stages, side = _stages(sample_shape)
        layers: list[nn.Module] = []
        ch_in, ch = int(sample_shape[0]), width
        for _ in range(stages):
            layers += [nn.Conv2d(ch_in, ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            ch_in, ch = ch, ch * 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch_in * side * side, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))[:, 0]


def with_spectral_norm(net: nn.Module) -> nn.Module:
    """W -> W / sigma_max(W) on every Linear and Conv2d of `net` (torch's parametrization, power iteration)."""
    for module in list(net.modules()):
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.utils.parametrizations.spectral_norm(module)
    return net


def build_gan_nets(kind: str, latent_dim: int, sample_shape: Sequence[int], hidden: Sequence[int] = (128, 128, 128),
                   activation: str = "relu", output: str = "linear", width: int = 32, pack: int = 1,
                   spectral_norm: bool = False, scale: float = 1.0,
                   d_hidden: Sequence[int] | None = None) -> tuple[nn.Module, nn.Module]:
    """The (generator, discriminator) pair: kind=mlp (any data) or dcgan (square images).
    d_hidden: D's layer sizes when they differ from G's (mlp). D takes `pack` samples concatenated along the first
    axis: shape [pack * sample_shape[0], *sample_shape[1:]]."""
    require(isinstance(latent_dim, int) and latent_dim > 0,
            f"model.latent_dim={latent_dim!r} must be a positive integer, e.g. 2 or 64")
    require(isinstance(pack, int) and pack >= 1, f"model.pack={pack!r} must be an integer >= 1 (1: no packing)")
    require(scale > 0, f"model.data_scale={scale} must be positive (or auto)")
    d_shape = (pack * int(sample_shape[0]), *(int(d) for d in sample_shape[1:]))
    if kind == "mlp":
        G, D = (MLPGenerator(latent_dim, sample_shape, hidden, activation, output, scale),
                MLPDiscriminator(d_shape, hidden if d_hidden is None else d_hidden, activation, scale))
    else:
        require(kind == "dcgan", f"model.net.kind={kind!r} is not known: choose mlp or dcgan")
        require(scale == 1, f"model.data_scale={scale} applies to the mlp nets only: use 1 (or auto) with dcgan")
        require(len(sample_shape) == 3, "model.net.kind=dcgan needs image data, the samples have shape "
                f"{tuple(sample_shape)}: use model.net.kind=mlp")
        G, D = DCGANGenerator(latent_dim, sample_shape, width, output), DCGANDiscriminator(d_shape, width)
    return G, with_spectral_norm(D) if spectral_norm else D
