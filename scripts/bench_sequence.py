"""The adding problem, T sweep, RNN vs LSTM, trained through dlf and by a plain PyTorch loop with the same settings.

    OMP_NUM_THREADS=2 python scripts/bench_sequence.py                      # T = 50, 100, 200; 3,000 steps each
    python scripts/bench_sequence.py --lengths 100 --steps 300 --models lstm  # a quick look

Settings (DESIGN.md's plain-loop reference): hidden 128, Adam 1e-3, gradient clipping 1, batch 50, LSTM forget bias 1.
For each (model, T) it prints dlf's test MSE (the always-1 baseline is 0.167), the plain loop's test MSE, the median
time of one training step in each, and their ratio (dlf / plain: what Lightning, logging and dlf cost per step).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dlf.data.adding import AddingDataModule  # noqa: E402


class StepTimer(L.Callback):
    """Wall time of every training step, as Lightning runs it (forward, backward, clipping, optimizer, logging)."""

    def __init__(self):
        self.times, self._t = [], 0.0

    def on_train_batch_start(self, *args):
        self._t = time.perf_counter()

    def on_train_batch_end(self, *args):
        self.times.append(time.perf_counter() - self._t)


def run_dlf(model: str, T: int, steps: int, seed: int, tmp: Path) -> tuple[float, float]:
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from dlf.train import CONFIG_DIR, run

    exp = f"{model}_adding"
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={exp}", f"data.seq_len={T}", f"seed={seed}", "logger=none"])
    timer = StepTimer()
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp / f"{model}_{T}")
        cfg.paths.data_dir = str(tmp / "data")
        cfg.trainer.max_steps, cfg.trainer.max_time = steps, None
        cfg.trainer.enable_progress_bar = cfg.trainer.enable_model_summary = False
        cfg.trainer.val_check_interval = min(steps, 1000)
        cfg.callbacks = {}
    orig = L.Trainer.__init__

    def patched(self, *a, **kw):  # add the timer to the Trainer dlf builds
        kw["callbacks"] = list(kw.get("callbacks") or []) + [timer]
        orig(self, *a, **kw)

    L.Trainer.__init__ = patched
    try:
        m = run(cfg)
    finally:
        L.Trainer.__init__ = orig
    return m["test/mse"], statistics.median(timer.times[5:] or timer.times)


def run_plain(model: str, T: int, steps: int, seed: int) -> tuple[float, float]:
    """A hand-written loop: the same data, net, optimizer and clipping, no framework."""
    torch.manual_seed(seed)
    dm = AddingDataModule(seq_len=T)
    dm.prepare()
    x, y = dm.train
    cls = torch.nn.LSTM if model == "lstm" else torch.nn.RNN
    rnn, head = cls(2, 128, batch_first=True), torch.nn.Linear(128, 1)
    if model == "lstm":
        with torch.no_grad():
            rnn.bias_ih_l0[128:256].fill_(1.0)
            rnn.bias_hh_l0[128:256].zero_()
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    times, gen = [], torch.Generator().manual_seed(seed)
    for _ in range(steps):
        t0 = time.perf_counter()
        idx = torch.randint(0, len(x), (50,), generator=gen)
        out, _ = rnn(x[idx])
        loss = torch.nn.functional.mse_loss(head(out[:, -1]), y[idx])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    with torch.no_grad():
        out, _ = rnn(dm.test[0])
        mse = float(torch.nn.functional.mse_loss(head(out[:, -1]), dm.test[1]))
    return mse, statistics.median(times[5:] or times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 200])
    ap.add_argument("--models", nargs="+", default=["rnn", "lstm"], choices=["rnn", "lstm"])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default="logs/bench_sequence")
    args = ap.parse_args()
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    print(f"torch threads: {torch.get_num_threads()}; {args.steps} steps each; baseline MSE 0.167")
    print(f"{'model':5} {'T':>4} | {'dlf MSE':>9} {'plain MSE':>9} | {'dlf ms/step':>11} {'plain ms/step':>13} {'ratio':>6}")
    for model in args.models:
        for T in args.lengths:
            t0 = time.perf_counter()
            mse_p, step_p = run_plain(model, T, args.steps, args.seed)
            mse_d, step_d = run_dlf(model, T, args.steps, args.seed, Path(args.tmp))
            print(f"{model:5} {T:4d} | {mse_d:9.5f} {mse_p:9.5f} | {step_d * 1e3:11.2f} {step_p * 1e3:13.2f} "
                  f"{step_d / step_p:6.2f}   ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
