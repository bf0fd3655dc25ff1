"""What the health callback costs: dlf's real training path (scripts/bench.py's dlf side) with the callback at its
default cadence against the same run with callbacks.health=null, alternated in one process for --repeats rounds.

    OMP_NUM_THREADS=1 python scripts/bench_health.py [WORKLOAD ...] [--repeats 5] [--measurements 3] [--clock cpu]

Per round and side: the median interval between the starts of consecutive training steps (bench.py's measure; the
first 5 left out) and their mean (the measured steps and every other occasional step included). Each run is sized to
hold --measurements measured steps in the timed intervals at the default cadence (every 100 optimizer steps: 100
batches, 50 for the GAN, whose D and G steps both count), so the mean is what the callback adds over a long run.
A line per workload: median over rounds of each side, and of the per-round ratios on / off.

--direct: instead, one run with the callback on, its own work clocked (its methods and module hooks wrapped, summed per
batch): what it costs a step between measurements, what a measurement costs, and both at the default cadence as a
share of the median step. On a shared machine whose load moves a step by 10-40 % from round to round, this resolves
what the on/off rounds cannot (docs/health.md, "What it costs").
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402
import bench_workloads  # noqa: E402
import torch  # noqa: E402

WORKLOADS = ["parity", "xor", "mlp", "cnn", "cnn1d", "rnn", "lstm", "gan"]
SIDES = {"off": ["callbacks.health=null"], "on": []}


def one_run(name: str, steps: int, out: Path, overrides: list[str]) -> tuple[float, float]:
    a = bench.parser().parse_args([name, "--steps", str(steps), "--dlf-override", *(overrides or ["seed=42"])])
    cfg = bench.compose(name, steps, out, a)
    with contextlib.redirect_stdout(io.StringIO()):  # the runs' bars and reports
        bench.dlf_side(name, cfg, steps, a)
    starts = bench_workloads.StepClock.last.starts
    gaps = [b - x for x, b in zip(starts, starts[1:])][bench.SKIP:]
    return statistics.median(gaps), statistics.fmean(gaps)


def measure(name: str, a) -> str:
    per = 50 if name == "gan" else 100  # batches between measurements at every_n_steps=100
    steps = bench.SKIP + 1 + per * a.measurements
    res: dict[str, list[tuple[float, float]]] = {s: [] for s in SIDES}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats + 1):  # round 0 warms up (imports, first allocations)
            for side, ov in (SIDES.items() if r % 2 else reversed(SIDES.items())):
                t = one_run(name, steps if r else bench.SKIP * 2 + 3, Path(tmp) / f"{side}{r}", ov)
                if r:
                    res[side].append(t)
    med = {s: statistics.median(m for m, _ in v) for s, v in res.items()}
    ratio_med = statistics.median(on[0] / off[0] for on, off in zip(res["on"], res["off"]))
    ratio_mean = statistics.median(on[1] / off[1] for on, off in zip(res["on"], res["off"]))
    return (f"{name}: {steps} steps x {a.repeats} rounds; median step off {med['off'] * 1e3:.3f} ms, on "
            f"{med['on'] * 1e3:.3f} ms; on/off median {ratio_med:.3f}, mean (measured steps included) {ratio_mean:.3f}"
            f" (rounds' mean ratios: {', '.join(f'{on[1] / off[1]:.3f}' for on, off in zip(res['on'], res['off']))})")


def direct(name: str, a) -> str:
    """The callback's own time inside one run with it on: its methods and module hooks wrapped with a clock, summed per
    batch; a batch between measurements (Lightning calls only on_train_batch_start) and a measured one, against the
    run's median step (the cost of Lightning's dispatch of that one hook, ~1-2 us, is not in it)."""
    from dlf.callbacks import health

    spent, per_batch, measured, clock = [0.0], [], [False], bench_workloads.CLOCK[0]

    def timed(f, flag=False):
        def wrapper(*args, **kwargs):
            t = clock()
            try:
                return f(*args, **kwargs)
            finally:
                spent[0] += clock() - t
                measured[0] |= flag
        return wrapper

    def batch_start(self, *args):
        if spent[0]:
            per_batch.append((measured[0], spent[0]))
        spent[0], measured[0] = 0.0, False
        return start(self, *args)

    H = health.Health
    saved = {k: H.__dict__[k] for k in ("on_train_batch_start", "on_before_optimizer_step", "on_train_batch_end",
                                        "_activation_hook", "_pass_hook", "_d_hook")}
    start = timed(saved["on_train_batch_start"])
    try:
        H.on_train_batch_start = batch_start
        H.on_before_optimizer_step = timed(saved["on_before_optimizer_step"], True)
        H.on_train_batch_end = timed(saved["on_train_batch_end"], True)
        H._activation_hook = lambda self, n: timed(saved["_activation_hook"](self, n), True)
        H._pass_hook = lambda self, n: timed(saved["_pass_hook"](self, n), True)
        H._d_hook = timed(saved["_d_hook"], True)
        steps = bench.SKIP + 1 + (50 if name == "gan" else 100) * a.measurements
        with tempfile.TemporaryDirectory() as tmp:
            one_run(name, min(steps, 2 * bench.SKIP + 3), Path(tmp) / "warm", [])
            per_batch.clear()
            step, _ = one_run(name, steps, Path(tmp) / "on", [])
    finally:
        for k, v in saved.items():
            setattr(H, k, v)
    between = statistics.median(t for m, t in per_batch if not m)
    meas = [t for m, t in per_batch if m]
    every = 50 if name == "gan" else 100
    cost = statistics.fmean(meas[1:] or meas) if meas else 0.0  # the first (step 0) pays first calls' costs
    return (f"{name}: median step {step * 1e3:.3f} ms; the callback between measurements {between * 1e6:.1f} us a "
            f"step ({between / step:.2%}); a measurement {cost * 1e3:.2f} ms (the mean after the first; each: "
            f"{', '.join(f'{t * 1e3:.2f}' for t in meas)}); at the default "
            f"cadence (every {every} batches) {(between + cost / every) / step:.2%} of a step")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workloads", nargs="*", metavar="WORKLOAD", help=f"default: all ({' '.join(WORKLOADS)})")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--measurements", type=int, default=3, help="measured steps in each run's timed intervals")
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="cpu: this process's CPU time (time.process_time), less sensitive to other load")
    ap.add_argument("--direct", action="store_true",
                    help="the callback's own time inside a run (its methods and hooks clocked), not on/off rounds")
    a = ap.parse_args(argv)
    if bad := [w for w in a.workloads if w not in WORKLOADS]:
        ap.error(f"unknown workload {bad[0]}: choose from {' '.join(WORKLOADS)}")
    bench_workloads.CLOCK[0] = time.process_time if a.clock == "cpu" else time.perf_counter
    torch.set_num_threads(1)
    bench.quiet()
    print(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), f"{a.clock} clock, 1 thread, "
          f"{a.repeats} rounds, {a.measurements} measured steps a run", flush=True)
    for name in a.workloads or WORKLOADS:
        print(direct(name, a) if a.direct else measure(name, a), flush=True)
    print(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
