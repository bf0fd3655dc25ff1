"""Two-dimensional toy sets: the four XOR points and scikit-learn's half-moons."""

from __future__ import annotations

import torch

from dlf.data.base import DataFacts, InMemoryDataModule
from dlf.errors import require

# The truth table of XOR: y = x1 XOR x2.
XOR_X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])


class XORDataModule(InMemoryDataModule):
    """The four XOR points as one full batch; an epoch is `repeats` gradient steps on that batch.

    Validation and test use the same four points: the question XOR asks is whether the net can fit them at all.
    """

    def __init__(self, repeats: int = 50):
        super().__init__(batch_size=4)
        require(isinstance(repeats, int) and repeats > 0,
                f"data.repeats={repeats!r} must be a positive integer (full-batch steps per epoch): set e.g. data.repeats=50")
        self.repeats = repeats

    def build(self) -> None:
        self.train = self.val = self.test = (XOR_X.clone(), XOR_Y.clone())
        self.facts = DataFacts(name="xor", kind="vector", target="binary", input_shape=(2,), in_features=2, num_classes=2)

    def train_dataloader(self):
        return self.train_loader(batch_size=4, repeats=self.repeats)  # many processes: 4 // W points each


class MoonsDataModule(InMemoryDataModule):
    """scikit-learn's make_moons: two interleaving half-circles with Gaussian noise, split train/val/test."""

    def __init__(self, n_samples: int = 1000, noise: float = 0.2, val_fraction: float = 0.2,
                 test_fraction: float = 0.2, batch_size: int = 64, seed: int = 0):
        super().__init__(batch_size=batch_size, seed=seed)
        require(isinstance(n_samples, int) and n_samples >= 10, f"data.n_samples={n_samples!r} must be an integer >= 10")
        require(0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1,
                f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must be in (0, 1) "
                "and sum to less than 1")
        self.n_samples, self.noise = n_samples, noise
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    def build(self) -> None:
        from sklearn.datasets import make_moons
        from sklearn.model_selection import train_test_split

        x, y = make_moons(n_samples=self.n_samples, noise=self.noise, random_state=self.seed)
        x = torch.as_tensor(x, dtype=torch.float32)
        y = torch.as_tensor(y, dtype=torch.float32).unsqueeze(1)
        holdout = self.val_fraction + self.test_fraction
        x_tr, x_ho, y_tr, y_ho = train_test_split(x, y, test_size=holdout, random_state=self.seed, stratify=y[:, 0])
        x_va, x_te, y_va, y_te = train_test_split(x_ho, y_ho, test_size=self.test_fraction / holdout,
                                                  random_state=self.seed, stratify=y_ho[:, 0])
        self.train, self.val, self.test = (x_tr, y_tr), (x_va, y_va), (x_te, y_te)
        self.facts = DataFacts(name="moons", kind="vector", target="binary", input_shape=(2,), in_features=2, num_classes=2)
