"""Per-step time of the dlf 1-D CNN on MNIST-1D (Lightning loop, `model=cnn1d`) against a hand-written plain-PyTorch
loop with the same net, data, batch (100) and optimizer (Adam 1e-2). Prints medians over repeats and the ratio.

    PYTHONPATH=src python scripts/bench_cnn.py [--steps 600] [--repeats 3] [--threads 1] [--impl torch|scratch]
                                               [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("DLF_DATA", ROOT / "data"))  # where MNIST-1D is generated and cached
sys.path.insert(0, str(ROOT / "src"))


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def dlf_run(steps: int, impl: str, tmp: Path, device: str = "cpu") -> float:
    """Seconds per step of trainer.fit for `steps` steps (no validation, logger, checkpoints or figures)."""
    import lightning as L
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import open_dict

    from dlf.train import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=cnn1d", "trainer=cpu", f"model.net.impl={impl}",
                                          "model.print_summary=false"])
    with open_dict(cfg):
        cfg.paths.data_dir = str(DATA)
    L.seed_everything(0, verbose=False)
    dm = instantiate(cfg.data)
    facts = dm.prepare()
    model = instantiate(cfg.model, _partial_=True)(facts=facts, optimizer=instantiate(cfg.optimizer), scheduler=None)
    trainer = L.Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1, max_steps=steps,
                        limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(tmp))
    t = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    _sync(device)
    return (time.perf_counter() - t) / steps


def plain_run(steps: int, impl: str, device: str = "cpu") -> float:
    """The same net and data in a hand-written loop: slice a shuffled batch, forward, loss, backward, step."""
    from omegaconf import OmegaConf

    from dlf.data.mnist1d import MNIST1DDataModule
    from dlf.nets.cnn import build_cnn

    torch.manual_seed(0)
    cfg = OmegaConf.load(ROOT / "src/dlf/configs/model/cnn1d.yaml")
    dm = MNIST1DDataModule(data_dir=str(DATA), val_fraction=0.1)
    dm.prepare()
    x, y = (t.to(device) for t in dm.train)
    net = build_cnn((1, 40), 10, impl, dims=1, blocks=cfg.model.net.blocks, hidden=[]).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    t = time.perf_counter()
    done = 0
    while done < steps:
        order = torch.randperm(len(x), device=device)
        for b in range(0, len(x), 100):
            if done == steps:
                break
            idx = order[b:b + 100]
            loss = torch.nn.functional.cross_entropy(net(x[idx].unsqueeze(1)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
    _sync(device)
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--impl", default="torch", choices=["torch", "scratch"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    plain, dlf = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.repeats):  # interleaved, so a busy moment hits both
            plain.append(plain_run(a.steps, a.impl, a.device))
            dlf.append(dlf_run(a.steps, a.impl, Path(tmp), a.device))
    p, d = statistics.median(plain), statistics.median(dlf)
    print(f"MNIST-1D 1-D CNN (impl={a.impl}), batch 100, Adam 1e-2, {a.steps} steps x {a.repeats}, "
          f"{a.threads} thread(s), {a.device}")
    print(f"  plain PyTorch loop : {p * 1e3:7.3f} ms/step (median; all {[round(v * 1e3, 3) for v in plain]})")
    print(f"  dlf (Lightning)    : {d * 1e3:7.3f} ms/step (median; all {[round(v * 1e3, 3) for v in dlf]})")
    print(f"  ratio dlf / plain  : {d / p:.2f}")


if __name__ == "__main__":
    main()
