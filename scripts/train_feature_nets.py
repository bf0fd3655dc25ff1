"""Train the feature nets of dlf's Fréchet distance (dlf.metrics.frechet) and write them into the package:

    python scripts/train_feature_nets.py                  # both: fashion_mnist (d = 64) and digits (d = 16)
    python scripts/train_feature_nets.py digits           # one
    python scripts/train_feature_nets.py digits --out /tmp/nets   # elsewhere (the test checks the sha256 this way)

Each is dlf.metrics.frechet.FeatureNet trained as a classifier (Adam, lr 1e-3, batches of 128, seed 0, one thread) on
the data module's training split only (Fashion-MNIST: the 54,000 images data=fashion_mnist trains on; digits: the
1,167 of data=digits); the test split is used once, for the accuracy the card records. It writes
src/dlf/metrics/feature_nets/<data>.pt (the state_dict) and <data>.json (the card: name, sha256, seed, command,
test accuracy) and prints the sha256, which docs/results.md quotes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = {"fashion_mnist": 4, "digits": 80}
SEED = 0


def datamodule(data: str):
    """(train pixels, train labels, test pixels, test labels, facts), pixels in [0, 1]."""
    if data == "digits":
        from dlf.data.digits import DigitsDataModule

        dm = DigitsDataModule()
    else:
        from dlf.data.vision import VisionDataModule

        dm = VisionDataModule(name=data, data_dir=str(ROOT / "data"), system_dir="/usr/share/datasets/fashion-mnist")
    dm.prepare()
    pixels = lambda x: x if "mean" not in dm.facts.extra else (  # noqa: E731 - undo the per-channel standardisation
        x * torch.tensor(dm.facts.extra["std"])[:, None, None] + torch.tensor(dm.facts.extra["mean"])[:, None, None])
    return pixels(dm.train[0]), dm.train[1], pixels(dm.test[0]), dm.test[1], dm.facts


def train(data: str, out: Path | None = None) -> dict:
    from dlf.metrics.frechet import DIMS, FeatureNet, name, store_dir

    torch.manual_seed(SEED)
    x, y, xt, yt, facts = datamodule(data)
    net = FeatureNet(tuple(facts.image_shape), facts.num_classes, DIMS[data])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS[data]):
        net.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 128):
            idx = order[i:i + 128]
            loss = torch.nn.functional.cross_entropy(net.logits(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"{data}: epoch {epoch + 1}/{EPOCHS[data]}, last batch loss {loss.item():.3f}", flush=True)
    net.eval()
    with torch.no_grad():
        acc = float((torch.cat([net.logits(b).argmax(1) for b in xt.split(1000)]) == yt).float().mean())
    out = out or store_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{data}.pt"
    torch.save(net.state_dict(), path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    info = {"name": name(data), "data": data, "features": DIMS[data], "image_shape": list(facts.image_shape),
            "num_classes": facts.num_classes, "train_images": len(x), "epochs": EPOCHS[data], "seed": SEED,
            "test_acc": round(acc, 4), "sha256": sha,
            "command": f"OMP_NUM_THREADS=1 python scripts/train_feature_nets.py {data}"}
    (out / f"{data}.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"{info['name']}: test accuracy {100 * acc:.2f}%, wrote {path} sha256 {sha}")
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="*", choices=[*EPOCHS, []], help="fashion_mnist, digits (default: both)")
    ap.add_argument("--out", type=Path, default=None, help="folder to write to (default: the package's, "
                    "src/dlf/metrics/feature_nets)")
    a = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    for data in a.data or list(EPOCHS):
        train(data, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
