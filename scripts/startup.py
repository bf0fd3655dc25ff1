"""Start-up cost of a small run: the CPU time (user + system, of the child process) of `python train.py debug=fast`
(XOR) above the floor `python -c "import torch, lightning"`, the median of several runs, back to back.

    python scripts/startup.py                          # this clone, 7 runs of each
    python scripts/startup.py --runs 11 --against ../old  # and another clone (e.g. a worktree of an older commit)

Each round runs the floor, then this clone's run, then each --against clone's run, so all see the same machine state;
every process gets OMP_NUM_THREADS=1 (a CPU time, not a wall time: less sensitive to other load, not immune to it).
A clone's `train.py` runs with its own `src` first on PYTHONPATH, in this interpreter's environment.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(cmd: list[str], env: dict) -> float:
    """User + system CPU seconds of one child process (which must exit 0)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode:
        sys.exit(f"startup: `{' '.join(cmd)}` failed (exit {r.returncode}): {r.stderr.strip().splitlines()[-1:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=7, help="runs of each command (default 7)")
    p.add_argument("--against", action="append", default=[], metavar="DIR", help="another clone to measure too")
    args = p.parse_args(argv)
    clones = [ROOT, *(Path(a).resolve() for a in args.against)]
    for c in clones:
        if not (c / "train.py").is_file():
            sys.exit(f"startup: {c} has no train.py: --against takes the folder of a dlf clone")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    floor, runs = [], {c: [] for c in clones}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            floor.append(cpu_seconds([sys.executable, "-c", "import torch, lightning"], env))
            for c in clones:
                cenv = {**env, "PYTHONPATH": os.pathsep.join([str(c / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
                runs[c].append(cpu_seconds([sys.executable, str(c / "train.py"), "debug=fast",
                                            f"hydra.run.dir={tmp}/{c.name}_{i}"], cenv))
    f = statistics.median(floor)
    print(f"CPU seconds, median of {args.runs} (OMP_NUM_THREADS=1), python {sys.version.split()[0]}")
    print(f"  floor  python -c 'import torch, lightning'   {f:6.3f}")
    for c in clones:
        m = statistics.median(runs[c])
        print(f"  {c}: python train.py debug=fast   {m:6.3f}   above the floor {m - f:6.3f}")


if __name__ == "__main__":
    main()
