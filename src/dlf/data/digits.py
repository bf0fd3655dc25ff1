"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes): no download, ships with the package."""

from __future__ import annotations

import torch

from dlf.data.base import DataFacts, InMemoryDataModule
from dlf.errors import require


class DigitsDataModule(InMemoryDataModule):
    """Images [N, 1, 8, 8] scaled to [0, 1] (pixel / 16), a stratified seeded train/val/test split."""

    def __init__(self, val_fraction: float = 0.15, test_fraction: float = 0.2, batch_size: int = 64,
                 split_seed: int = 0, seed: int = 0):
        super().__init__(batch_size=batch_size, seed=seed)
        require(0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1,
                f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must be in (0, 1) "
                "and sum to less than 1")
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed

    def split(self, y) -> tuple:
        """(train, val, test) indices into load_digits() in its own order: stratified, seeded by split_seed."""
        from sklearn.model_selection import train_test_split

        idx = torch.arange(len(y)).numpy()
        holdout = self.val_fraction + self.test_fraction
        tr, ho = train_test_split(idx, test_size=holdout, random_state=self.split_seed, stratify=y)
        va, te = train_test_split(ho, test_size=self.test_fraction / holdout, random_state=self.split_seed,
                                  stratify=y[ho])
        return tr, va, te

    def build(self) -> None:
        from sklearn.datasets import load_digits

        d = load_digits()
        # raw pixels 0..16 -> [0, 1]: the facts' own transform, which a trained model's predict applies to raw digits
        self.facts = DataFacts(name="digits", kind="image", target="classes", input_shape=(1, 8, 8),
                               num_classes=10, image_shape=(1, 8, 8), raw_scale=16.0)
        x, _ = self.facts.encode(d.images)
        y = torch.as_tensor(d.target, dtype=torch.int64)
        tr, va, te = self.split(y.numpy())
        self.train, self.val, self.test = (x[tr], y[tr]), (x[va], y[va]), (x[te], y[te])
