"""A user's own model and dataset for dlf, kept outside dlf's tree: a GRU net for dlf's sequence system, and a small
dataset of noisy sine waves to tell apart by frequency. dlf finds them through the configs in ./configs
(`dlf-train --config-dir configs model=my_gru`); Hydra imports this module by the `_target_`s there."""

from __future__ import annotations

import math

import torch
from torch import nn

from dlf.data.base import DataFacts, InMemoryDataModule


class GRUNet(nn.Module):
    """nn.GRU with what dlf's SequenceSystem reads from a net: `out_features`, `hidden_size`, `bidirectional`, and
    forward(x [N, T, F], state) -> (outputs [N, T, H], state).
    r_t = σ(W_r x_t + U_r h_{t-1}),  z_t = σ(W_z x_t + U_z h_{t-1}),  n_t = tanh(W_n x_t + r_t ⊙ (U_n h_{t-1})),
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}."""

    def __init__(self, in_features: int, hidden_size: int = 32, num_layers: int = 1):
        super().__init__()
        self.gru = nn.GRU(in_features, hidden_size, num_layers, batch_first=True)
        self.hidden_size, self.out_features, self.bidirectional = hidden_size, hidden_size, False

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        return self.gru(x, state)


def build_gru(in_features: int, hidden_size: int = 32, num_layers: int = 1) -> GRUNet:
    """The net factory the model config names (`_partial_: true`: the system passes the data's input size)."""
    return GRUNet(in_features, hidden_size, num_layers)


def sine_waves(n: int, T: int, freqs: list[float], noise: float, gen: torch.Generator):
    """x [n, T, 1] = sin(2π f t / T + φ) + noise, y [n] = the index of f; φ ~ U[0, 2π)."""
    y = torch.randint(0, len(freqs), (n,), generator=gen)
    f = torch.tensor(freqs)[y].unsqueeze(1)
    phase = 2 * math.pi * torch.rand(n, 1, generator=gen)
    t = torch.arange(T).float().unsqueeze(0)
    x = torch.sin(2 * math.pi * f * t / T + phase) + noise * torch.randn(n, T, generator=gen)
    return x.unsqueeze(-1), y


class SineWaves(InMemoryDataModule):
    """Noisy sine waves of `len(freqs)` frequencies: which one is it? Generated from `data_seed` (nothing cached)."""

    def __init__(self, seq_len: int = 32, freqs: tuple = (1.0, 2.0, 4.0), noise: float = 0.3, n_train: int = 1200,
                 n_val: int = 300, n_test: int = 300, batch_size: int = 50, data_seed: int = 0, seed: int = 0):
        super().__init__(batch_size=batch_size, seed=seed)
        self.seq_len, self.freqs, self.noise = seq_len, [float(f) for f in freqs], noise
        self.sizes, self.data_seed = (n_train, n_val, n_test), data_seed

    def build(self) -> None:
        gen = torch.Generator().manual_seed(int(self.data_seed))
        self.train, self.val, self.test = (sine_waves(n, self.seq_len, self.freqs, self.noise, gen) for n in self.sizes)
        self.facts = DataFacts(name="my_data", kind="sequence", target="classes", input_shape=(self.seq_len, 1),
                               in_features=1, num_classes=len(self.freqs), seq_len=self.seq_len)
