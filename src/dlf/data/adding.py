"""The adding problem (Hochreiter & Schmidhuber 1997), in the form of Arjovsky, Shah & Bengio (2016).

Each sample is a sequence of T steps with two features: a value drawn from U[0, 1] and a marker that is 1 at exactly two
steps, one in each half of the sequence, and 0 elsewhere. The target is the sum of the two marked values. It is read
at the last step, so the net must carry the first marked value across at least T/2 steps. Always answering 1 (the mean
of the target) gives MSE Var(u1 + u2) = 2/12 = 1/6 ≈ 0.167: the baseline a model must beat.
"""

from __future__ import annotations

import torch

from dlf.data.base import DataFacts, InMemoryDataModule
from dlf.errors import require

BASELINE_MSE = 1.0 / 6.0


def make_adding(n: int, T: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x [n, T, 2] (value, marker), y [n, 1] = sum of the two marked values."""
    values = torch.rand(n, T, generator=generator)
    half = T // 2
    first = torch.randint(0, half, (n,), generator=generator)        # one marker in [0, T/2)
    second = torch.randint(half, T, (n,), generator=generator)       # one marker in [T/2, T)
    markers = torch.zeros(n, T)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    y = (values[rows, first] + values[rows, second]).unsqueeze(1)
    return torch.stack([values, markers], 2), y


class AddingDataModule(InMemoryDataModule):
    """Fixed train/val/test sets drawn from `data_seed` (generation takes well under a second, so nothing is cached)."""

    def __init__(self, seq_len: int = 100, n_train: int = 50_000, n_val: int = 1_000, n_test: int = 1_000,
                 batch_size: int = 50, data_seed: int = 1234, seed: int = 0):
        super().__init__(batch_size=batch_size, seed=seed)
        require(isinstance(seq_len, int) and seq_len >= 2,
                f"data.seq_len={seq_len!r} must be an integer >= 2 (one marker in each half), e.g. data.seq_len=100")
        for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            require(isinstance(n, int) and n > 0, f"data.{name}={n!r} must be a positive integer")
        self.seq_len, self.n_train, self.n_val, self.n_test = seq_len, n_train, n_val, n_test
        self.data_seed = data_seed

    def build(self) -> None:
        gen = torch.Generator().manual_seed(int(self.data_seed))
        self.train = make_adding(self.n_train, self.seq_len, gen)
        self.val = make_adding(self.n_val, self.seq_len, gen)
        self.test = make_adding(self.n_test, self.seq_len, gen)
        self.facts = DataFacts(name="adding", kind="sequence", target="regression", input_shape=(self.seq_len, 2),
                               in_features=2, seq_len=self.seq_len, extra={"baseline_mse": BASELINE_MSE})
