"""The adding problem (Hochreiter & Schmidhuber 1997), in two forms: `variant`.

arjovsky2016 (the default; Arjovsky, Shah & Bengio 2016): each sample is a sequence of T steps with two features: a
value drawn from U[0, 1] and a marker that is 1 at exactly two steps, one in each half of the sequence, and 0
elsewhere. The target is the sum of the two marked values. It is read at the last step, so the net must carry the
first marked value across at least T/2 steps. Always answering 1 (the mean of the target) gives MSE
Var(u1 + u2) = 2/12 = 1/6 ≈ 0.167: the baseline a model must beat.

hochreiter1997 (the paper's own form, section 5.4, Experiment 4): each step is a pair (value, marker); values are drawn
from U[-1, 1]; a sequence has a random length between T and T + T/10. Exactly two pairs are marked (marker 1): first
one of the first ten pairs (X1), then one of the first T/2 - 1 still unmarked pairs (X2) — here: one of the pairs
0 .. T/2 - 1 other than the first mark, so the last mark is at most at step T/2 and the minimal lag is T/2. The first and
the last pair carry marker -1 unless marked; a marked first pair's value is set to 0 (the paper: "we set X1 to zero").
Target: 0.5 + (X1 + X2) / 4 (in [0, 1]); a sequence is processed correctly when its absolute error is below 0.04
(TOLERANCE). Always answering 0.5 gives MSE Var(X1 + X2) / 16 = (2/3) / 16 = 1/24 ≈ 0.042.
Batches need one length: a sequence shorter than T + T/10 is preceded by (0, 0) pairs (the -1 marker still opens it).
"""

from __future__ import annotations

import torch

from dlf.data.base import DataFacts, InMemoryDataModule
from dlf.errors import require

BASELINE_MSE = 1.0 / 6.0            # arjovsky2016: always answering 1
BASELINE_MSE_1997 = 1.0 / 24.0      # hochreiter1997: always answering 0.5
TOLERANCE = 0.04                    # hochreiter1997: |error| < 0.04 is a correct sequence
VARIANTS = ("arjovsky2016", "hochreiter1997")


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


def make_adding_1997(n: int, T: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x [n, T + T//10, 2] (value, marker), y [n, 1] = 0.5 + (X1 + X2) / 4 (Hochreiter & Schmidhuber 1997).
    Sequence i is L_i in [T, T + T//10] pairs long and occupies the last L_i steps (starting at s_i = width - L_i)."""
    width, rows = T + T // 10, torch.arange(n)
    lengths = torch.randint(T, width + 1, (n,), generator=generator)
    start = width - lengths
    values = torch.rand(n, width, generator=generator) * 2 - 1
    first = torch.randint(0, min(10, T // 2), (n,), generator=generator)       # one of the first ten pairs
    second = torch.randint(0, T // 2 - 1, (n,), generator=generator)           # one of the T/2 - 1 other pairs
    second = second + (second >= first).long()                                 # ... of 0 .. T/2 - 1, skipping first
    steps = torch.arange(width).expand(n, width)
    values = torch.where(steps < start[:, None], torch.zeros(()), values)     # padding: (0, 0)
    markers = torch.zeros(n, width)
    markers[rows, start] = -1.0                                                # the first pair
    markers[rows, width - 1] = -1.0                                            # the last pair
    first, second = start + first, start + second
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    values[rows[first == start], start[first == start]] = 0.0                  # a marked first pair: X = 0
    values[rows[second == start], start[second == start]] = 0.0
    y = (0.5 + (values[rows, first] + values[rows, second]) / 4.0).unsqueeze(1)
    return torch.stack([values, markers], 2), y


class AddingDataModule(InMemoryDataModule):
    """Fixed train/val/test sets drawn from `data_seed` (generation takes well under a second, so nothing is cached).
    `variant`: arjovsky2016 (values in [0, 1], target the sum) or hochreiter1997 (the paper's form; module docstring)."""

    def __init__(self, seq_len: int = 100, n_train: int = 50_000, n_val: int = 1_000, n_test: int = 1_000,
                 batch_size: int = 50, data_seed: int = 1234, seed: int = 0, variant: str = "arjovsky2016"):
        super().__init__(batch_size=batch_size, seed=seed)
        require(variant in VARIANTS, f"data.variant={variant!r} is not an adding-problem variant: choose one of "
                                     f"{', '.join(VARIANTS)} (e.g. data.variant=hochreiter1997)")
        low = 4 if variant == "hochreiter1997" else 2
        require(isinstance(seq_len, int) and seq_len >= low,
                f"data.seq_len={seq_len!r} must be an integer >= {low} "
                f"({'two marks among the first T/2 pairs' if low == 4 else 'one marker in each half'}), "
                f"e.g. data.seq_len=100")
        for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            require(isinstance(n, int) and n > 0, f"data.{name}={n!r} must be a positive integer")
        self.seq_len, self.n_train, self.n_val, self.n_test = seq_len, n_train, n_val, n_test
        self.data_seed, self.variant = data_seed, variant

    def build(self) -> None:
        gen = torch.Generator().manual_seed(int(self.data_seed))
        make = make_adding_1997 if self.variant == "hochreiter1997" else make_adding
        self.train = make(self.n_train, self.seq_len, gen)
        self.val = make(self.n_val, self.seq_len, gen)
        self.test = make(self.n_test, self.seq_len, gen)
        steps = self.train[0].shape[1]
        extra = ({"baseline_mse": BASELINE_MSE_1997, "tolerance": TOLERANCE, "variant": self.variant}
                 if self.variant == "hochreiter1997" else {"baseline_mse": BASELINE_MSE})
        self.facts = DataFacts(name="adding", kind="sequence", target="regression", input_shape=(steps, 2),
                               in_features=2, seq_len=steps, extra=extra)
