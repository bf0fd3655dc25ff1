"""data=mnist | fashion_mnist | cifar10 offline: small files in the real on-disk formats, written here, are read by
torchvision's classes and served normalised; missing files give one line saying where and how."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torchvision

from dlf.data.vision import VisionDataModule
from dlf.errors import DlfError


def _idx(path, arr: np.ndarray, gz: bool):
    """The IDX format: magic (0, 0, type 0x08 = ubyte, number of dims), big-endian int32 sizes, then the bytes."""
    head = bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">i", d) for d in arr.shape)
    data = head + arr.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def write_mnist(root, folder="MNIST", n_train=50, n_test=20, gz=True):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        x = rng.integers(0, 256, size=(n, 28, 28))
        x[:, 0, 0] = y * 20  # a pixel that tells the label, to check images and labels stay paired
        _idx(raw / f"{prefix}-images-idx3-ubyte", x, gz)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", y, gz)


def write_cifar10(root, monkeypatch, n=20):
    """python-pickle batches as CIFAR-10 ships them; torchvision checks their md5, so the class gets ours."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    md5 = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = list(rng.integers(0, 10, size=n))
        labels[:10] = range(10)
        batch = {"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), "labels": labels}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    for name in [*names, "batches.meta"]:
        md5[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(cls, "meta", {"filename": "batches.meta", "key": "label_names", "md5": md5["batches.meta"]})


@pytest.mark.parametrize("name,folder,gz", [("mnist", "MNIST", True), ("fashion_mnist", "FashionMNIST", False)])
def test_mnist_style_files(name, folder, gz, tmp_path):
    write_mnist(tmp_path, folder, gz=gz)
    dm = VisionDataModule(name=name, data_dir=str(tmp_path), val_fraction=0.2, batch_size=8)
    facts = dm.prepare()
    assert facts.kind == "image" and facts.image_shape == (1, 28, 28) and facts.num_classes == 10
    (x, y), (xv, yv), (xt, yt) = dm.train, dm.val, dm.test
    assert (len(x), len(xv), len(xt)) == (40, 10, 20)
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-2    # standardised with train statistics
    mean, std = facts.extra["mean"][0], facts.extra["std"][0]
    for xs, ys in ((x, y), (xv, yv), (xt, yt)):
        pix = (xs[:, 0, 0, 0] * std + mean) * 255
        assert np.allclose(pix.numpy(), ys.numpy() * 20, atol=1e-2)


def test_cifar10_files(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch)
    dm = VisionDataModule(name="cifar10", data_dir=str(tmp_path), val_fraction=0.1, batch_size=8)
    facts = dm.prepare()
    assert facts.image_shape == (3, 32, 32) and facts.num_classes == 10
    assert dm.train[0].shape == (90, 3, 32, 32) and dm.test[0].shape == (20, 3, 32, 32)
    assert len(facts.extra["mean"]) == 3


def test_missing_files_one_line(tmp_path):
    with pytest.raises(DlfError) as e:
        VisionDataModule(name="mnist", data_dir=str(tmp_path)).prepare()
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "MNIST" / "raw") in msg and "data.download=true" in msg


def test_cnn_trains_on_mnist_files(tmp_path, make_cfg):
    """The whole pipeline, model=cnn data=mnist, on the small written files."""
    from omegaconf import open_dict

    from dlf.run.train import run

    write_mnist(tmp_path / "files")
    cfg = make_cfg(["model=cnn", "data=mnist"], tmp_path / "run")
    with open_dict(cfg):
        cfg.data.data_dir = str(tmp_path / "files")
    m = run(cfg)
    assert 0.0 <= m["test/acc"] <= 1.0


# ---- Fashion-MNIST from Debian's package (dataset-fashion-mnist) ----------------------------------------------------
SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not (SYSTEM_FASHION / "train-images-idx3-ubyte.gz").is_file(),
                                   reason=f"no Fashion-MNIST files in {SYSTEM_FASHION}: apt-get install dataset-fashion-mnist")


def test_fashion_mnist_read_from_the_system_dir(tmp_path):
    """Only the system dir has the files (flat .gz, as Debian ships them): they are unpacked into the data dir."""
    system = tmp_path / "system"
    write_mnist(tmp_path / "staging", "FashionMNIST", gz=True)
    system.mkdir()
    for f in (tmp_path / "staging" / "FashionMNIST" / "raw").iterdir():
        f.rename(system / f.name)
    dm = VisionDataModule(name="fashion_mnist", data_dir=str(tmp_path / "data"), val_fraction=0.2, batch_size=8,
                          system_dir=str(system))
    dm.prepare()
    assert (len(dm.train[0]), len(dm.test[0])) == (40, 20)
    assert (tmp_path / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def test_fashion_mnist_missing_everywhere_is_one_line(tmp_path):
    with pytest.raises(DlfError) as e:
        VisionDataModule(name="fashion_mnist", data_dir=str(tmp_path / "data"),
                         system_dir=str(tmp_path / "nowhere")).prepare()
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "nowhere") in msg and "data.download=true" in msg
    assert "apt-get install dataset-fashion-mnist" in msg


@needs_fashion
def test_real_fashion_mnist_files(tmp_path, make_cfg):
    """data=fashion_mnist's default config finds Debian's files: 54,000 / 6,000 / 10,000 images of 10 classes."""
    from hydra.utils import instantiate


    cfg = make_cfg(["model=cnn", "data=fashion_mnist"], tmp_path)
    dm = instantiate(cfg.data)
    facts = dm.prepare()
    assert facts.image_shape == (1, 28, 28) and facts.num_classes == 10
    assert (len(dm.train[0]), len(dm.val[0]), len(dm.test[0])) == (54000, 6000, 10000)
    assert sorted(dm.test[1].unique().tolist()) == list(range(10))
