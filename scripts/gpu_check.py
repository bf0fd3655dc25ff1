"""Every model family for a few hundred steps on the GPU (`python train.py model=<family> trainer=gpu ...`), then the
per-step overhead benchmark on the GPU (scripts/bench.py cnn1d: dlf's training path against a plain PyTorch loop),
printed as one Markdown table. Run it through scripts/gpu_check.sh, which first installs what the image lacks.

    scripts/gpu_check.sh [--cpu] [--steps 300] [--families mlp,cnn] [--jobs 4] [--bench-steps 500]

--cpu is the dry run CI uses: trainer=cpu, a few steps each, the benchmark on CPU. Exit status 1 if any row failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# family -> overrides that make a short run (validation on 2 batches, no logger, no summary)
FAMILIES = {
    "mlp_xor": ["model=mlp_xor"],
    "mlp": ["model=mlp"],
    "cnn": ["model=cnn"],
    "cnn1d": ["model=cnn1d"],
    "rnn": ["model=rnn"],
    "lstm": ["model=lstm"],
    "gan": ["model=gan"],
    "dcgan": ["model=dcgan"],
}
COMMON = ["logger=none", "callbacks.model_summary=null", "trainer.enable_progress_bar=false", "trainer.max_epochs=1000",
          "trainer.limit_val_batches=2", "trainer.limit_test_batches=5"]


def run_family(name: str, steps: int, accel: str, data_dir: str, timeout: int) -> dict:
    args = [*FAMILIES[name], f"trainer={accel}", f"trainer.max_steps={steps}", *COMMON, f"paths.data_dir={data_dir}"]
    if accel == "cpu":
        args += ["trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    env.setdefault("DLF_ROOT", str(ROOT))
    t = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=timeout)
        ok, out, err = r.returncode == 0, r.stdout, r.stderr
    except subprocess.TimeoutExpired:
        ok, out, err = False, "", f"timed out after {timeout} s"
    seconds = time.perf_counter() - t
    m = re.search(r"^Test: (.*)$", out, re.M)
    result = m.group(1) if ok and m else "FAILED: " + (err.strip().splitlines() or ["?"])[-1][:150]
    return {"family": name, "ok": ok and m is not None, "steps": steps, "result": result, "seconds": seconds,
            "command": "python train.py " + " ".join(args[:2] + [f"trainer.max_steps={steps}"])}


def bench(steps: int, device: str) -> dict:
    """scripts/bench.py's cnn1d workload (1-D CNN, MNIST-1D) on `device`: one round of plain loop, floor, dlf."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from bench import measure, parser, quiet

    quiet()
    a = parser().parse_args(["cnn1d", "--steps", str(steps), "--repeats", "1", "--device", device])
    med, _ = measure("cnn1d", a)
    p, d = med["plain"], med["dlf"]
    return {"plain_ms": p * 1e3, "dlf_ms": d * 1e3, "ratio": d / p, "steps": steps}


def device_name(accel: str) -> str:
    import torch

    if accel == "gpu":
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"CPU, {os.cpu_count()} cores (torch {torch.__version__}) - dry run"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="dry run on CPU with a few steps")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per family (default 300; --cpu: 3)")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset")
    ap.add_argument("--jobs", type=int, default=None, help="families run at once (default 4; --cpu: 1)")
    ap.add_argument("--bench-steps", type=int, default=None, help="benchmark steps (default 500; --cpu: 10; 0: skip)")
    ap.add_argument("--timeout", type=int, default=240, help="seconds per family")
    a = ap.parse_args()
    accel = "cpu" if a.cpu else "gpu"
    steps = a.steps or (3 if a.cpu else 300)
    jobs = a.jobs or (1 if a.cpu else 4)
    bench_steps = a.bench_steps if a.bench_steps is not None else (10 if a.cpu else 500)
    names = [f for f in a.families.split(",") if f]
    unknown = [f for f in names if f not in FAMILIES]
    if unknown:
        print(f"gpu_check: unknown families {unknown}: choose from {', '.join(FAMILIES)}", file=sys.stderr)
        return 2
    if not a.cpu:
        import torch

        if not torch.cuda.is_available():
            print("gpu_check: no CUDA GPU visible: run with --cpu for the dry run", file=sys.stderr)
            return 2
    data_dir = os.environ.get("DLF_DATA", str(ROOT / "data"))
    t0 = time.perf_counter()
    # MNIST-1D is generated once before the parallel runs (the families would race to write the same cache file)
    first = [n for n in names if n in ("mlp", "cnn1d", "rnn", "lstm")][:1]
    rows = [run_family(n, steps, accel, data_dir, a.timeout) for n in first]
    with cf.ThreadPoolExecutor(jobs) as pool:
        rows += list(pool.map(lambda n: run_family(n, steps, accel, data_dir, a.timeout),
                              [n for n in names if n not in first]))
    rows.sort(key=lambda r: names.index(r["family"]))
    b = bench(bench_steps, "cuda" if accel == "gpu" else "cpu") if bench_steps else None
    print(f"\nDevice: {device_name(accel)}; {jobs} families at a time; total {time.perf_counter() - t0:.0f} s\n")
    print("| family | command | result | wall s |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['family']} | `{r['command']}` | {r['result']} | {r['seconds']:.0f} |")
    if b:
        print(f"| overhead | `scripts/bench.py cnn1d --device {'cuda' if accel == 'gpu' else 'cpu'} --repeats 1 --steps "
              f"{b['steps']}` | plain {b['plain_ms']:.2f} ms/step, dlf {b['dlf_ms']:.2f} ms/step, ratio "
              f"{b['ratio']:.2f} | |")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
