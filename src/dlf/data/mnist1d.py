"""MNIST-1D (Greydanus 2020): ten classes of 1-D signals of length 40, made locally by the mnist1d package."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from dlf.data.base import DataFacts, InMemoryDataModule
from dlf.data.cache import cached
from dlf.errors import DlfError, require


def make_mnist1d(num_samples: int = 5000, data_seed: int = 42) -> dict:
    """Generate MNIST-1D with the package's own generator (the paper's default arguments); no download."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:  # pragma: no cover - the package is a dependency
        raise DlfError("data=mnist1d needs the `mnist1d` package: pip install mnist1d") from e
    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = data_seed
    d = make_dataset(args)
    return {
        "x": torch.as_tensor(d["x"], dtype=torch.float32),
        "y": torch.as_tensor(d["y"], dtype=torch.int64),
        "x_test": torch.as_tensor(d["x_test"], dtype=torch.float32),
        "y_test": torch.as_tensor(d["y_test"], dtype=torch.int64),
    }


def load_or_make(data_dir: str | Path, num_samples: int, data_seed: int) -> dict:
    """Cached under <data_dir>/mnist1d/: generated once (one builder however many runs start together), then read back;
    a damaged cache is rebuilt with a warning (see dlf.data.cache)."""
    key = hashlib.sha1(json.dumps([num_samples, data_seed]).encode()).hexdigest()[:10]
    path = Path(data_dir) / "mnist1d" / f"mnist1d_{num_samples}_{data_seed}_{key}.pt"
    return cached(path, lambda: make_mnist1d(num_samples, data_seed))


class MNIST1DDataModule(InMemoryDataModule):
    """MNIST-1D as [N, 40] signals (vector models read 40 features; sequence models read 40 steps of 1 feature)."""

    def __init__(self, data_dir: str = "data/", num_samples: int = 5000, val_fraction: float = 0.1,
                 batch_size: int = 100, data_seed: int = 42, seed: int = 0):
        super().__init__(batch_size=batch_size, seed=seed)
        require(isinstance(num_samples, int) and num_samples >= 50,
                f"data.num_samples={num_samples!r} must be an integer >= 50: set e.g. data.num_samples=5000")
        require(0 <= val_fraction < 1, f"data.val_fraction={val_fraction} must be in [0, 1): set e.g. data.val_fraction=0.1")
        self.data_dir, self.num_samples, self.val_fraction, self.data_seed = data_dir, num_samples, val_fraction, data_seed

    def build(self) -> None:
        d = load_or_make(self.data_dir, self.num_samples, self.data_seed)
        x, y = d["x"], d["y"]
        n_val = int(round(len(x) * self.val_fraction))
        # A fixed split (the generator already shuffled the samples): the last n_val training samples validate.
        self.train = (x[: len(x) - n_val], y[: len(x) - n_val])
        self.val = (x[len(x) - n_val:], y[len(x) - n_val:]) if n_val else (d["x_test"], d["y_test"])
        self.test = (d["x_test"], d["y_test"])
        length = x.shape[1]
        self.facts = DataFacts(name="mnist1d", kind="sequence", target="classes", input_shape=(length,),
                               in_features=1, num_classes=10, seq_len=length)
