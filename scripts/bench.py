"""Per-step time of one workload on four sides that compute the same thing: a hand-written plain-PyTorch loop, the same
step in a minimal LightningModule under Trainer(barebones=True) (Lightning's floor), that module under a Trainer with
the features dlf turns on, written the usual Lightning way (`lightning`: self.log of the loss every step, TensorBoard,
a ModelCheckpoint, Lightning's progress bar; no dlf), and dlf's real training path. The `lightning` side splits dlf's
cost over the floor into what Lightning's own logging, checkpointing and bar cost and what dlf adds on top.

    python scripts/bench.py WORKLOAD [--threads 1] [--steps N] [--repeats 7] [--compile] [--precision bf16-mixed]
    WORKLOAD: parity | xor | mlp | cnn | cnn1d | rnn | lstm | gan          (scripts/bench_all.sh runs them all)

Same net, data, optimizer, seed and number of steps on every side: the nets and batches are dlf's own, built as
`dlf.run.train.run` builds them from the composed config that `python train.py <overrides>` uses; the plain loop and the
floor run a hand-written step on them (scripts/bench_workloads.py). dlf's side is `dlf.run.train.run(cfg)` itself, with the
user's callbacks, logger (TensorBoard), checkpoints, divergence guard and progress bar; only the test stage is off (the
figures drawn after fit run but are not timed). After a warm-up run of each side, the sides alternate (plain, floor,
lightning, dlf, plain, ...) for --repeats rounds. A side's time per step is the median interval between the starts of
consecutive training steps (the first 5 are skipped; the Lightning sides and dlf's take them with one callback,
bench_workloads.StepClock); the line reports the median over rounds. ratio = dlf / plain,
vs floor = dlf / floor. Seven short rounds rather than three long ones: on a shared virtual machine a run's steps can
turn 20-50 % slower for a tenth of a second or more (every part of a step at once, the forward and backward passes as
much as the Python around them; dlf's larger step more often than the bare loop's), and a round caught in such a
stretch moves a median of three.

The four final training losses must agree to a relative 1e-4 (float32; 2e-2 with --compile or bf16-mixed, whose
kernels round differently): otherwise the benchmark compares different computations, says so and exits with 1.
--compile and --precision apply to every side (dlf: model.compile=true, trainer.precision=...).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # bench_workloads (also the _target_ of the dlf side's StepClock)
if not os.environ.get("PYTHONPATH"):  # PYTHONPATH=<another checkout>/src measures that dlf
    sys.path.insert(1, str(ROOT / "src"))

import bench_workloads  # noqa: E402
import torch  # noqa: E402

SKIP = 5  # first step intervals of a run left out of its median (allocations, first calls)


def compose(name: str, steps: int, out: Path, a, side: str = "dlf") -> object:
    """dlf's config for the workload, as `python train.py <overrides>` composes it, sized to `steps` batches."""
    from bench_workloads import WORKLOADS, steps_overrides
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    from dlf.run.train import CONFIG_DIR

    accel = "gpu" if a.device == "cuda" else "cpu"
    overrides = [*WORKLOADS[name][0], *steps_overrides(name, steps), "test=false", f"trainer.accelerator={accel}",
                 f"trainer.precision={a.precision}", *(a.dlf_override if side == "dlf" else [])]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides)
    if a.compile and "compile" not in cfg.model:  # an older dlf
        raise SystemExit(f"bench.py: the dlf in {CONFIG_DIR.parent} has no model.compile option: drop --compile")
    with open_dict(cfg):
        if a.compile:
            cfg.model.compile = True
        cfg.paths.output_dir = str(out)
        cfg.paths.data_dir = os.environ.get("DLF_DATA", str(ROOT / "data"))
        if name == "parity":  # Lightning's parity data (a bench-only data module; dlf has no such dataset)
            cfg.data = {"_target_": "bench_workloads.ParityDataModule", "seed": cfg.seed}
        cfg.callbacks["bench_clock"] = {"_target_": "bench_workloads.StepClock"}
    return cfg


def per_step(starts: list[float]) -> float:
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    return statistics.median(gaps[SKIP:] if len(gaps) > 2 * SKIP else gaps)


NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"  # `import lightning` sets it to "1"; a plain-PyTorch script has no such line


def plain_side(name, cfg, steps, a) -> tuple[float, float]:
    """The hand-written loop: for batch in loader: step. Returns (seconds per step, final loss). It runs as in a script
    that never imports Lightning: without the PYTORCH_NVML_BASED_CUDA_CHECK=1 that Lightning's import leaves in this
    process (on a machine without NVIDIA's driver it makes every Adam or RMSprop step try to load libnvidia-ml first,
    ~50 µs; the floor, a Lightning loop, keeps it; dlf's run drops it where the load would fail)."""
    saved = os.environ.pop(NVML_CHECK, None)
    try:
        return _plain_loop(name, cfg, steps, a)
    finally:
        if saved is not None:
            os.environ[NVML_CHECK] = saved


def _plain_loop(name, cfg, steps, a) -> tuple[float, float]:
    from bench_workloads import Step, build

    dm, model, opt = build(cfg)
    step = Step(name, cfg, model, opt, steps, perturb=a.perturb_plain, bf16=a.precision == "bf16-mixed")
    if a.compile:
        for m in step.modules():
            m.compile()
    for m in step.modules():
        m.to(a.device)
    opts, scheds = step.optimizers()
    loader, starts, loss = dm.train_dataloader(), [], None
    while len(starts) < steps:
        for batch in loader:
            starts.append(_sync(a.device))
            loss = step.run(tuple(t.to(a.device) for t in batch), opts, scheds)
            if len(starts) == steps:
                break
    return per_step(starts), float(loss)


def _sync(device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    return bench_workloads.CLOCK[0]()


def floor_side(name, cfg, steps, a, features: bool = False) -> tuple[float, float]:
    """The same step in a minimal LightningModule under Trainer(barebones=True). features=True: the same module under a
    Trainer with what dlf turns on, written the usual Lightning way (side "lightning"): `self.log` of the loss every
    step (prog_bar), TensorBoard writing every trainer.log_every_n_steps, a ModelCheckpoint, Lightning's progress bar."""
    import lightning as L
    from bench_workloads import Step, StepClock, build

    dm, model, opt = build(cfg)
    step = Step(name, cfg, model, opt, steps, bf16=False)  # Lightning's precision plugin does the autocast

    class Floor(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.nets = torch.nn.ModuleList(step.modules())
            self.automatic_optimization = name != "gan"
            self.loss, self.scheds = None, []

        def configure_optimizers(self):
            opts, self.scheds = step.optimizers()
            return opts

        def training_step(self, batch, batch_idx):
            if self.automatic_optimization:
                loss = step.loss_fn(model, batch)
                self.loss = loss.detach()
            else:
                loss = self.loss = step.run(batch, self.optimizers(), self.scheds, self.manual_backward)
            if features:
                self.log("train/loss", loss, prog_bar=True)
            return loss if self.automatic_optimization else None

    if a.compile:
        for m in step.modules():
            m.compile()
    floor = Floor()
    limits = {"max_epochs": 1} if name == "gan" else {"max_steps": steps, "max_epochs": -1}
    if features:
        out = Path(cfg.paths.output_dir)
        kit = dict(logger=L.pytorch.loggers.TensorBoardLogger(str(out), name="", version=""), default_root_dir=str(out),
                   log_every_n_steps=cfg.trainer.log_every_n_steps, enable_model_summary=False, num_sanity_val_steps=0)
    else:
        kit = dict(barebones=True)
    clock = StepClock()  # the clock dlf's side carries, so that no side pays for timing that another does not
    trainer = L.Trainer(accelerator="gpu" if a.device == "cuda" else "cpu", devices=1, precision=a.precision,
                        gradient_clip_val=step.clip if name != "gan" else None, callbacks=[clock], **limits, **kit)
    trainer.fit(floor, train_dataloaders=dm.train_dataloader())
    return per_step(clock.starts), float(floor.loss)


def dlf_side(name, cfg, steps, a) -> tuple[float, float]:
    """dlf.run.train.run(cfg): the real path (start-up checks, callbacks, logger, checkpoints, guard), timed per step."""
    from bench_workloads import StepClock

    from dlf.run.train import run

    run(cfg)
    clock = StepClock.last
    if len(clock.starts) != steps:
        raise SystemExit(f"bench.py: dlf ran {len(clock.starts)} training steps, not {steps}: the benchmark is wrong")
    return per_step(clock.starts), float(clock.loss)


def lightning_side(name, cfg, steps, a) -> tuple[float, float]:
    """Lightning with dlf's features on, no dlf: where Lightning's own logging, checkpointing and bar put its cost."""
    return floor_side(name, cfg, steps, a, features=True)


SIDES = {"plain": plain_side, "floor": floor_side, "lightning": lightning_side, "dlf": dlf_side}


def measure(name: str, a) -> tuple[dict, dict]:
    """Warm-up round, then --repeats rounds of plain, floor, dlf: ({side: median s/step}, {side: final loss}),
    the per-round times in `a.rounds`."""
    from bench_workloads import WORKLOADS

    bench_workloads.CLOCK[0] = time.process_time if getattr(a, "clock", "wall") == "cpu" else time.perf_counter
    steps = a.steps or WORKLOADS[name][2]
    times: dict[str, list[float]] = {s: [] for s in SIDES}
    losses: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats + 1):  # round 0 is the warm-up (imports, first allocations), not counted
            n = steps if r else min(steps, 2 * SKIP + 3)
            for side, fn in SIDES.items():
                cfg = compose(name, n, Path(tmp) / f"{side}{r}", a, side)
                if r == a.repeats and a.profile == side:
                    import cProfile
                    import pstats

                    prof = cProfile.Profile(bench_workloads.CLOCK[0])
                    t, loss = prof.runcall(fn, name, cfg, n, a)
                    pstats.Stats(prof).sort_stats(a.sort).print_stats(120)
                else:
                    t, loss = fn(name, cfg, n, a)
                if r:
                    times[side].append(t)
                    losses[side] = loss
    a.rounds = times
    return {s: statistics.median(v) for s, v in times.items()}, losses


def parser() -> argparse.ArgumentParser:
    from bench_workloads import WORKLOADS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", choices=list(WORKLOADS))
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per run (default: per workload)")
    ap.add_argument("--repeats", type=int, default=7, help="rounds of plain, floor, lightning, dlf after the warm-up")
    ap.add_argument("--compile", action="store_true", help="torch.compile the net(s) on every side (model.compile=true)")
    ap.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cuda: not the GAN (scripts/gpu_check.py)")
    ap.add_argument("--dlf-override", nargs="+", default=[], metavar="KEY=VALUE",
                    help="extra overrides for dlf's side only (what a callback costs: callbacks.step_checkpoint=null)")
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="cpu: this process's CPU time per step (time.process_time), less sensitive to other load")
    ap.add_argument("--profile", choices=list(SIDES), help="cProfile that side's last round: top 120 by --sort")
    ap.add_argument("--sort", default="cumulative", help="--profile's order: cumulative | tottime | ...")
    ap.add_argument("--perturb-plain", action="store_true", help=argparse.SUPPRESS)  # tests: the check must fail
    return ap


def quiet() -> None:
    warnings.filterwarnings("ignore")
    for n in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(n).setLevel(logging.ERROR)


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    torch.set_num_threads(a.threads)
    quiet()
    import dlf

    name = a.workload
    med, losses = measure(name, a)
    tol = 2e-2 if a.compile or a.precision != "32-true" else 1e-4
    print(f"{name}: dlf from {Path(dlf.__file__).parent}, torch {torch.__version__}, {a.threads} thread(s), "
          f"{len(a.rounds['dlf'])} rounds, precision {a.precision}{', compiled' if a.compile else ''}, {a.device}, "
          f"{a.clock} clock")
    for s in SIDES:
        print(f"  {s:9}: {med[s] * 1e3:8.3f} ms/step (rounds: {', '.join(f'{t * 1e3:.3f}' for t in a.rounds[s])}), "
              f"final loss {losses[s]:.6g}")
    ref = losses["plain"]
    bad = [s for s in SIDES if not abs(losses[s] - ref) <= tol * max(abs(ref), 1e-3)]
    if bad:
        print(f"{name}: BENCHMARK WRONG: final losses differ beyond a relative {tol:g} "
              f"({', '.join(f'{s} {losses[s]:.6g}' for s in SIDES)}): the sides do not compute the same thing")
        return 1
    print(f"{name}: Lightning with the same features, no dlf (self.log every step, TensorBoard, ModelCheckpoint, its bar): "
          f"{med['lightning'] * 1e3:.2f} ms/step = {med['lightning'] / med['floor']:.2f} x floor; "
          f"dlf {med['dlf'] / med['lightning']:.2f} x that")
    print(f"{name}: plain {med['plain'] * 1e3:.2f} ms/step, floor {med['floor'] * 1e3:.2f} ms/step, "
          f"dlf {med['dlf'] * 1e3:.2f} ms/step, ratio {med['dlf'] / med['plain']:.2f}, "
          f"vs floor {med['dlf'] / med['floor']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
