"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's dataset classes, held in memory as normalised tensors.

Nothing is downloaded unless data.download=true. Without the files, start-up stops with one line that says where they
are expected and how to get them. MNIST-style .gz files placed in the raw folder by hand are unpacked first.
Where the data dir has no files, `system_dir` is looked at next: Debian's package dataset-fashion-mnist installs the
original .gz files in /usr/share/datasets/fashion-mnist (data=fashion_mnist's default); they are unpacked into the
data dir once, where torchvision reads them.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import torch

from dlf.data.base import DataFacts, InMemoryDataModule
from dlf.errors import DlfError, require
from dlf.faults import atomic_write

# name -> (torchvision class, folder it reads under root, files it needs there, image shape)
DATASETS = {
    "mnist": ("MNIST", "MNIST/raw", ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                      "t10k-labels-idx1-ubyte"), (1, 28, 28)),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw", ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
                      (1, 28, 28)),
    "cifar10": ("CIFAR10", "cifar-10-batches-py", ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                                                   "data_batch_5", "test_batch", "batches.meta"), (3, 32, 32)),
}


def _unpack_gz(folder: Path, files) -> None:
    """train-images-idx3-ubyte.gz -> train-images-idx3-ubyte (torchvision reads the unpacked files); atomic."""
    for name in files:
        raw, gz = folder / name, folder / (name + ".gz")
        if not raw.exists() and gz.exists():
            with gzip.open(gz, "rb") as src, atomic_write(raw) as dst:  # DDP ranks unpacking at once: each its own temp
                shutil.copyfileobj(src, dst)


def _from_system_dir(folder: Path, files, system_dir: str | Path | None) -> str:
    """Unpack `system_dir`'s .gz files into `folder` when the data dir lacks any; a note for the error line."""
    if not system_dir:
        return ""
    src = Path(system_dir)
    if all((folder / f).exists() or (folder / (f + ".gz")).exists() for f in files):
        return ""
    if not all((src / (f + ".gz")).is_file() for f in files):
        return f", nor in {src}"
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        raw = folder / name
        if not raw.exists():
            with gzip.open(src / (name + ".gz"), "rb") as fin, atomic_write(raw) as fout:
                shutil.copyfileobj(fin, fout)
    return ""


def load_torchvision(name: str, root: str | Path, download: bool, system_dir: str | Path | None = None):
    """(x_train uint8 [N, H, W(, C)], y_train, x_test, y_test) as numpy arrays, via the torchvision class."""
    import torchvision.datasets as tvd

    cls_name, sub, files, _ = DATASETS[name]
    root = Path(root)
    folder = root / sub
    also = "" if download or name == "cifar10" else _from_system_dir(folder, files, system_dir)
    if folder.is_dir() and name != "cifar10":
        _unpack_gz(folder, files)
    cls = getattr(tvd, cls_name)
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except RuntimeError as e:
        missing = [f for f in files if not (folder / f).exists() and not (folder / (f + ".gz")).exists()]
        what = f"missing {', '.join(missing)}" if missing else f"files present but not accepted ({str(e).strip()})"
        hint = " (Debian: apt-get install dataset-fashion-mnist)" if name == "fashion_mnist" else ""
        raise DlfError(f"data={name}: files not found in {folder}{also} ({what}): run once with data.download=true "
                       f"on a machine with a network, or copy torchvision's {cls_name} files there{hint}") from None
    except OSError as e:  # a download without a network
        raise DlfError(f"data={name}: download failed ({type(e).__name__}: {e}): copy torchvision's {cls_name} files "
                       f"into {folder} and run with data.download=false") from None
    return (np.asarray(train.data), np.asarray(train.targets), np.asarray(test.data), np.asarray(test.targets))


class VisionDataModule(InMemoryDataModule):
    """Images [N, C, H, W], pixels / 255 then standardised per channel with the training split's mean and std."""

    def __init__(self, name: str = "mnist", data_dir: str = "data/", download: bool = False,
                 val_fraction: float = 0.1, batch_size: int = 128, split_seed: int = 0, seed: int = 0,
                 train_size: int | None = None, system_dir: str | None = None):
        super().__init__(batch_size=batch_size, seed=seed)
        require(name in DATASETS, f"data.name={name!r} is not known: choose one of {', '.join(DATASETS)}")
        require(0 < val_fraction < 1, f"data.val_fraction={val_fraction} must be in (0, 1)")
        require(train_size is None or (isinstance(train_size, int) and train_size > 0),
                f"data.train_size={train_size!r} must be a positive integer or null (all)")
        self.name, self.data_dir, self.download = name, data_dir, bool(download)
        self.val_fraction, self.split_seed, self.train_size = val_fraction, split_seed, train_size
        self.system_dir = system_dir

    def build(self) -> None:
        x_raw, y, xt_raw, yt = load_torchvision(self.name, self.data_dir, self.download, self.system_dir)
        y, yt = torch.as_tensor(y, dtype=torch.int64), torch.as_tensor(yt, dtype=torch.int64)
        order = torch.randperm(len(x_raw), generator=torch.Generator().manual_seed(self.split_seed))
        n_val = max(1, int(round(len(x_raw) * self.val_fraction)))
        va, tr = order[:n_val].numpy(), order[n_val:].numpy()
        if self.train_size:
            tr = tr[: self.train_size]
        shape = (x_raw.shape[3], *x_raw.shape[1:3]) if x_raw.ndim == 4 else (1, *x_raw.shape[1:])  # [C, H, W]
        facts = DataFacts(name=self.name, kind="image", target="classes", input_shape=shape,
                          num_classes=int(max(y.max(), yt.max())) + 1 if self.name != "cifar10" else 10,
                          image_shape=shape, raw_scale=255.0)
        x = facts.encode(x_raw[tr])[0]                                  # pixels / 255, [N, C, H, W]
        mean = x.mean(dim=(0, 2, 3))                                    # per-channel statistics of the train split
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
        facts.extra = {"mean": mean.tolist(), "std": std.tolist()}      # encode now standardises too: (x - mean) / std
        self.facts = facts
        self.train, self.val, self.test = ((facts.encode(a)[0], b) for a, b in ((x_raw[tr], y[tr]),
                                                                                 (x_raw[va], y[va]), (xt_raw, yt)))
