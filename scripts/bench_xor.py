"""XOR: how many seeds dlf's default run solves, its wall time, and the same steps in a hand-written plain-PyTorch loop.

    python scripts/bench_xor.py --seeds 20            # default model=mlp_xor (Adam 0.05, 500 steps)
    python scripts/bench_xor.py --course              # the course exercise (GD alpha=0.01, 1/2 sum, 10,000 steps) + fixes

"Solved" = all four outputs on the right side of 0.5 by at least `--margin` (default 0.25: y_hat < 0.25 for 0, > 0.75 for 1).
Prints medians and the ratio dlf / plain loop, both measured in this run with the same thread count.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dlf.systems.mlp import MLPSystem  # noqa: E402

X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
Y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])


def solved(y_hat: torch.Tensor, margin: float) -> bool:
    return bool(((y_hat - Y).abs() < 0.5 - margin).all())


def plain_loop(seed: int, steps: int, opt: str, lr: float, cost: str = "mean", margin: float = 0.25):
    """The whole XOR exercise in plain PyTorch: 2-5-1 sigmoid, W ~ N(0,1), b = 0."""
    torch.manual_seed(seed)
    w1, b1 = torch.randn(2, 5, requires_grad=True), torch.zeros(5, requires_grad=True)
    w2, b2 = torch.randn(5, 1, requires_grad=True), torch.zeros(1, requires_grad=True)
    params = [w1, b1, w2, b2]
    o = torch.optim.Adam(params, lr=lr) if opt == "adam" else torch.optim.SGD(params, lr=lr)
    first = None
    t0 = time.perf_counter()
    for step in range(steps):
        y_hat = torch.sigmoid(torch.sigmoid(X @ w1 + b1) @ w2 + b2)
        j = 0.5 * ((Y - y_hat) ** 2).sum()
        if cost == "mean":
            j = j / 4
        o.zero_grad()
        j.backward()
        o.step()
        if first is None and solved(y_hat.detach(), margin):
            first = step
    dt = time.perf_counter() - t0
    with torch.no_grad():
        y_hat = torch.sigmoid(torch.sigmoid(X @ w1 + b1) @ w2 + b2)
    return solved(y_hat, margin), dt, first, y_hat


def course_gd(seeds: int, alpha: float, steps: int, margin: float):
    """The course's exercise with its bugs fixed, for many seeds at once (batched over seeds): 2-5-1 sigmoid,
    W ~ N(0,1) (per seed, as torch.manual_seed(seed); torch.randn), b = 0, GD on J = 1/2 sum (y - y_hat)^2,
    bias gradients summed over the four samples."""
    inits = []
    for s in range(seeds):
        torch.manual_seed(s)
        inits.append((torch.randn(2, 5), torch.randn(5, 1)))
    wxh = torch.stack([i[0] for i in inits]).double()          # [S, 2, 5]
    why = torch.stack([i[1] for i in inits]).double()          # [S, 5, 1]
    bh, by = torch.zeros(seeds, 1, 5, dtype=torch.float64), torch.zeros(seeds, 1, 1, dtype=torch.float64)
    x, y = X.double().expand(seeds, 4, 2), Y.double().expand(seeds, 4, 1)
    first = torch.full((seeds,), -1)
    for step in range(steps):
        a1 = torch.sigmoid(x @ wxh + bh)
        y_hat = torch.sigmoid(a1 @ why + by)
        ok = ((y_hat - y).abs() < 0.5 - margin).all(dim=2).all(dim=1)
        first = torch.where((first < 0) & ok, torch.full_like(first, step), first)
        delta2 = -(y - y_hat) * y_hat * (1 - y_hat)              # dJ/dz2
        delta1 = (delta2 @ why.transpose(1, 2)) * a1 * (1 - a1)  # dJ/dz1
        why = why - alpha * a1.transpose(1, 2) @ delta2
        by = by - alpha * delta2.sum(1, keepdim=True)
        wxh = wxh - alpha * x.transpose(1, 2) @ delta1
        bh = bh - alpha * delta1.sum(1, keepdim=True)
    return int(ok.sum()), [int(f) for f in first if f >= 0]


class FinalPredictions(MLPSystem):
    """The default MLP system, keeping its predictions on the four points at the end of training."""

    y_hat = None

    def on_train_end(self):
        with torch.no_grad():
            type(self).y_hat = self(X.to(self.device)).cpu()


def dlf_run(seed: int, overrides: list[str], margin: float):
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from dlf.train import CONFIG_DIR, run

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"seed={seed}", "logger=none", "test=false", *overrides])
    d = tempfile.mkdtemp()
    with open_dict(cfg):
        cfg.paths.output_dir = d
        cfg.trainer.enable_progress_bar = False
        cfg.trainer.enable_model_summary = False
        cfg.trainer.enable_checkpointing = False
        for k in ("model_checkpoint", "step_checkpoint", "model_summary", "cost_curve", "decision_boundary"):
            cfg.callbacks[k] = None
    steps = cfg.trainer.max_epochs * cfg.data.repeats
    cfg.model._target_ = f"{__name__}.FinalPredictions"
    FinalPredictions.y_hat = None
    t0 = time.perf_counter()
    run(cfg)
    dt = time.perf_counter() - t0
    return solved(FinalPredictions.y_hat, margin), dt, steps, FinalPredictions.y_hat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--margin", type=float, default=0.25)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--course", action="store_true", help="the course's exercise and what solves it (plain loop)")
    ap.add_argument("--override", nargs="*", default=[], help="extra dlf overrides, e.g. optimizer=sgd")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    if a.course:
        for alpha, steps in [(0.01, 10_000), (0.01, 100_000), (0.1, 10_000), (0.5, 10_000), (1.0, 10_000),
                             (2.0, 10_000)]:
            ok, first = course_gd(a.seeds, alpha, steps, a.margin)
            med = statistics.median(first) if first else float("nan")
            print(f"GD alpha={alpha:<5} J=1/2 sum, {steps:>7,} steps: solved {ok:2d}/{a.seeds} seeds, "
                  f"median first step solved {med}")
        return

    plain, dlf = [], []
    for s in range(a.seeds):
        ok_d, dt_d, steps, _ = dlf_run(s, a.override, a.margin)
        ok_p, dt_p, _, _ = plain_loop(s, steps, "adam", 0.05, "mean", a.margin)
        dlf.append((ok_d, dt_d))
        plain.append((ok_p, dt_p))
    md, mp = statistics.median(t for _, t in dlf), statistics.median(t for _, t in plain)
    print(f"threads={a.threads}, {steps} steps per run, {a.seeds} seeds, margin {a.margin}")
    print(f"dlf  (python train.py model=mlp_xor {' '.join(a.override)}): solved {sum(o for o, _ in dlf)}/{a.seeds}, "
          f"median run {md:.3f} s ({1e3 * md / steps:.2f} ms/step, set-up included)")
    print(f"plain PyTorch loop (Adam 0.05):            solved {sum(o for o, _ in plain)}/{a.seeds}, "
          f"median run {mp:.3f} s ({1e3 * mp / steps:.3f} ms/step)")
    print(f"ratio dlf / plain: {md / mp:.1f}x")


if __name__ == "__main__":
    main()
