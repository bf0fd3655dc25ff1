"""The lecture's three warnings, shown by dlf's health callback on real `python train.py` runs (tests/test_health.py
asserts each direction on the same runs; docs/health.md shows the figure):

1. A deep sigmoid MLP with N(0, 1) weights saturates: most of its units sit in the flat tails (a outside
   [0.03, 0.97]); the same net with ReLU and torch's default initialisation has few dead units.
2. Through that sigmoid net the gradient vanishes: the first layer's ||dJ/dW|| is orders of magnitude below the last's.
3. The update:data ratio follows the learning rate: 100x too large puts it far above -3, 100x too small far below.

    python scripts/health_lecture.py [--out docs/figures/health_lecture.png] [--dir /tmp/health_lecture]

Every run: 4 hidden layers of 100 on MNIST-1D, 10 SGD steps, health measured every 2 steps.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEEP = ["model=mlp", "data=mnist1d", "model.net.hidden=[100,100,100,100]", "optimizer=sgd", "trainer=cpu",
        "trainer.max_steps=10", "trainer.max_epochs=-1", "trainer.limit_val_batches=1", "test=false",
        "callbacks.health.every_n_steps=2", "trainer.enable_progress_bar=false", "callbacks.model_summary=null"]
GOOD_LR = 0.1  # SGD's rate for this net (model=mlp's lr_table: the optimizer file's default)
SIG_N, SIG_D = "sigmoid, N(0,1) init", "sigmoid, default init"
RELU, BIG, SMALL = f"ReLU, default init, lr {GOOD_LR:g}", f"ReLU, lr {GOOD_LR * 100:g} (100x)", \
    f"ReLU, lr {GOOD_LR / 100:g} (1/100)"
RUNS = {
    SIG_N: ["model.net.activation=sigmoid", "model.net.init=normal", f"optimizer.lr={GOOD_LR}"],
    SIG_D: ["model.net.activation=sigmoid", "model.net.init=default", f"optimizer.lr={GOOD_LR}"],
    RELU: ["model.net.activation=relu", "model.net.init=default", f"optimizer.lr={GOOD_LR}"],
    BIG: ["model.net.activation=relu", "model.net.init=default", f"optimizer.lr={GOOD_LR * 100:g}"],
    SMALL: ["model.net.activation=relu", "model.net.init=default", f"optimizer.lr={GOOD_LR / 100:g}"],
}
SATURATED_SHARE = 0.4   # the sigmoid N(0,1) net's median saturated share is above this, the ReLU net's dead share
HEALTHY_SHARE = 0.1     # below this
VANISHED = 1e-2         # the sigmoid net's first layer's gradient norm is below this times its last layer's
FAR = 1.5               # decades from the -3 guide: the update:data ratio at 100x and 1/100 the rate


def train(args: list[str], cwd: Path):
    """`python train.py <args>` in cwd: the finished process (returncode, stdout, stderr)."""
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, capture_output=True, text=True)


def run_all(where: Path, run: Callable = train) -> dict[str, dict]:
    """Each run of RUNS into where/<i>; returns {run: {quantity: {layer: [(step, value)]}, "summary": its health
    line}} from its event files and its output."""
    from dlf.tools.events import read_scalars

    out = {}
    for i, (name, extra) in enumerate(RUNS.items()):
        run_dir = where / str(i)
        args = [*DEEP, *extra, f"hydra.run.dir={run_dir}"]
        r = run(args, where)
        if r.returncode:
            raise SystemExit(f"health_lecture.py: python train.py {' '.join(args)} failed: {r.stderr.strip()[-500:]}")
        curves, damage = read_scalars(run_dir)
        assert damage is None, damage
        health: dict[str, dict] = {}
        for tag, (steps, values) in curves.items():
            if tag.startswith("health/"):
                _, quantity, layer = tag.split("/", 2)
                health.setdefault(quantity, {})[layer] = list(zip(steps, values))
        health["summary"] = next((line for line in r.stdout.splitlines() if line.startswith("health (")), "")
        out[name] = health
    return out


def median(points) -> float:
    return statistics.median(v for _, v in points)


def by_depth(series: dict) -> list[str]:
    """net.linears.0 ... or net.act[0] ...: the layers, input first."""
    return sorted(series, key=lambda k: int(k.rstrip("]").replace("[", ".").split(".")[-1]))


def numbers(results: dict[str, dict]) -> dict[str, float]:
    """The numbers the tests assert and the figure shows (medians over each run's measurements, then its layers)."""
    def share(run):
        return statistics.median(median(p) for p in results[run]["saturation"].values())

    def flow(run):
        grads = results[run]["grad_norm"]
        layers = by_depth(grads)
        return median(grads[layers[0]]) / median(grads[layers[-1]])

    out = {f"saturated share, {SIG_N}": share(SIG_N), f"dead share, {RELU}": share(RELU),
           f"first/last grad norm, {SIG_D}": flow(SIG_D), f"first/last grad norm, {RELU}": flow(RELU)}
    for name in (RELU, BIG, SMALL):
        out[f"update ratio, {name}"] = statistics.median(median(p) for p in results[name]["update_ratio"].values())
    return out


def figure(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    for run, colour in ((SIG_N, "tab:blue"), (RELU, "tab:orange")):
        for j, layer in enumerate(by_depth(results[run]["saturation"])):
            pts = results[run]["saturation"][layer]
            axes[0].plot([s for s, _ in pts], [100 * v for _, v in pts], color=colour, alpha=0.4 + 0.15 * j, lw=1,
                         label=run if j == 0 else None)
    axes[0].axhline(100 * SATURATED_SHARE, color="k", ls=":", lw=0.8)
    axes[0].set(title="1. saturated units, each layer (sigmoid outside [0.03, 0.97]; ReLU dead)",
                xlabel="training step", ylabel="share of units (%)", ylim=(0, 100))
    for k, (run, colour) in enumerate(((SIG_D, "tab:blue"), (RELU, "tab:orange"))):
        layers = by_depth(results[run]["grad_norm"])
        axes[1].bar([i + 0.4 * k for i in range(len(layers))], [median(results[run]["grad_norm"][n]) for n in layers],
                    width=0.4, color=colour, label=run)
    axes[1].set(yscale="log", title="2. ||dJ/dW|| per layer (median over the run)", xlabel="layer (input first)",
                xticks=[i + 0.2 for i in range(len(layers))], xticklabels=[str(i + 1) for i in range(len(layers))])
    for run, colour in ((BIG, "tab:red"), (RELU, "tab:green"), (SMALL, "tab:purple")):
        for j, pts in enumerate(results[run]["update_ratio"].values()):
            axes[2].plot(*zip(*pts), color=colour, lw=0.8, alpha=0.7, label=f"SGD, {run}" if j == 0 else None)
    axes[2].axhline(-3, color="k", ls="--", lw=1)
    axes[2].set(title="3. update:data ratio, each parameter tensor (-3 dashed)", xlabel="training step",
                ylabel="log10 std(update) / std(W)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("MLP 40-100-100-100-100-10 on MNIST-1D, SGD, 10 steps, health measured every 2 steps", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="write the figure here (PNG)")
    ap.add_argument("--dir", type=Path, default=None, help="the runs' dir (default: a temporary one)")
    ap.add_argument("--data-dir", default=None, help="paths.data_dir of the runs (MNIST-1D is made there once)")
    a = ap.parse_args(argv)
    if a.data_dir:
        DEEP.append(f"paths.data_dir={a.data_dir}")
    with tempfile.TemporaryDirectory() as tmp:
        where = a.dir or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        results = run_all(where)
        for k, v in numbers(results).items():
            print(f"{k:46} {v:.3g}")
        if a.out:
            figure(results, a.out)
            print(f"figure: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
