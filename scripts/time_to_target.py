"""Time to target: each family's headline run, old recipe against new, CPU seconds to reach its target (issue 31).

    python scripts/time_to_target.py                              # every headline: old s1, new s1-s3; ~1 h on one core
    python scripts/time_to_target.py --only lstm_mnist1d cnn_digits --seeds 3 --old-seeds 3
    python scripts/time_to_target.py --quick --only lstm_mnist1d --seeds 1 --out /tmp/results.md   # seconds: a check

Each run is the user's command, `python train.py <recipe's overrides> seed=S hydra.run.dir=<work>/<key>/<old|new>_sS`
(dlf's defaults otherwise: the progress bar to a log file, TensorBoard logging, checkpoints and the test are part of
a headline run's cost), in its own process with one thread (OMP_NUM_THREADS=MKL_NUM_THREADS=1), ONE run at a time.
The old and new recipes alternate back to back, seed by seed: old s1, new s1, old s2, new s2, ... (then the new
recipe's remaining seeds), so both see the same machine. A run's CPU time is the user + system time of its process and
the processes it waited for (os.wait4); its wall time, the 1-minute load average when it started and the CPU time the rest of
the machine used meanwhile (/proc/stat: was the machine idle?) are recorded beside it, and its test metrics are read
from its run dir's result.json.

Per headline: the old recipe's mean CPU seconds over its seeds, the new recipe's, their ratio (new / old), whether
every new seed met the target, and whether the ratio is at most 60 % (GOAL). The section "Time to target" of
docs/results.md is rendered from its data block (<!-- time-to-target-data ... -->), merged by headline key (`--only`
replaces those headlines and keeps the others); scripts/reproduce.py keeps the section as it is when it rewrites the
file. `--quick` (tiny budgets: a check that the machinery works, not a measurement) never writes docs/results.md
unless `--out` names it; the rows are marked quick.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from dlf.faults import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import reproduce  # noqa: E402  (scripts/reproduce.py: environment(), SHORT, the file's lock)

GOAL = 0.60  # the new recipe's mean CPU time at most 60 % of the old one's (issue 31, item 4)
ADDING_QUICK = ["trainer.max_steps=20", "trainer.val_check_interval=10", "trainer.limit_val_batches=2"]
GAN_QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=20"]


@dataclass
class Headline:
    key: str
    name: str
    target: str            # as the table shows it
    check: str             # on the run's test metrics: `metric op value` clauses joined by ` and ` (op: < <= > >=)
    old: list[str]         # the recipe before (today's defaults), as train.py overrides
    new: list[str]         # the faster recipe, as train.py overrides
    quick: list[str] = field(default_factory=lambda: list(reproduce.SHORT))  # --quick: appended to both recipes


# The headlines. `old` must stay reachable by overrides when a default changes; `new` is the experiment as it will be.
HEADLINES = [
    Headline("lstm_adding_T100", "LSTM, adding problem T = 100", "test MSE < 0.01", "test/mse < 0.01",
             old=["experiment=lstm_adding", "trainer.max_time=null", "model.net.forget_bias=1.0",  # before chrono
                  "trainer.max_steps=2500"],
             new=["experiment=lstm_adding", "trainer.max_time=null"], quick=ADDING_QUICK),
    Headline("cnn_digits", "CNN, 8x8 digits", "test accuracy ≥ 98.5%", "test/acc >= 0.985",
             old=["model=cnn"], new=["model=cnn", "trainer.max_epochs=40"]),  # measured; the default stays 80
    Headline("lstm_mnist1d", "LSTM, MNIST-1D", "test accuracy ≥ 97%", "test/acc >= 0.97",
             old=["experiment=lstm_mnist1d", "trainer.max_epochs=30"], new=["experiment=lstm_mnist1d"]),
    Headline("cnn1d_mnist1d", "1-D CNN, MNIST-1D", "test accuracy ≥ 94%", "test/acc >= 0.94",
             old=["experiment=cnn1d_mnist1d", "trainer.max_epochs=160"], new=["experiment=cnn1d_mnist1d"]),
    Headline("gan_grid", "GAN, grid of 25 Gaussians", "≥ 24/25 modes, ≥ 90% high quality",
             "test/modes >= 24 and test/high_quality >= 90",  # high_quality is logged in percent
             old=["experiment=gan_grid", "trainer.max_epochs=30", "model.g_ema=0.999"], new=["experiment=gan_grid"],
             quick=GAN_QUICK),
]

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
CLAUSE = re.compile(r"\s*(\S+)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*")
DATA = re.compile(r"<!-- time-to-target-data\n(.*?)\n-->", re.S)
START = "<!-- time-to-target:start (scripts/time_to_target.py writes this section; scripts/reproduce.py keeps it) -->"
END = "<!-- time-to-target:end -->"
SECTION = reproduce.KEEP  # the section, markers included, that scripts/reproduce.py keeps


class BadInput(Exception):
    """One line for the user: what was wrong and what to do."""


# ---- the target and the summary ------------------------------------------------------------------------------------
def clauses(check: str) -> list[tuple[str, str, float]]:
    """`test/modes >= 24 and test/high_quality >= 90` -> [(metric, op, value), ...]; a malformed check raises."""
    out = []
    for part in check.split(" and "):
        m = CLAUSE.fullmatch(part)
        if not m:
            raise ValueError(f"check {check!r}: {part!r} is not `metric op value` (op: < <= > >=)")
        out.append((m.group(1), m.group(2), float(m.group(3))))
    return out


def met(check: str, metrics: dict) -> bool:
    """Every clause holds on the run's test metrics; a missing or null metric does not meet it."""
    return all(metrics.get(k) is not None and OPS[op](metrics[k], v) for k, op, v in clauses(check))


def summary(rec: dict) -> dict:
    """A headline's numbers from its runs: mean CPU s of each recipe (runs that finished), ratio new / old, whether
    every new seed met the target, and the verdict (GOAL), "quick" or "incomplete" where there is none."""
    cpu = {r: [x["cpu_s"] for x in rec["runs"] if x["recipe"] == r and x["status"] == "ok"] for r in ("old", "new")}
    old = statistics.mean(cpu["old"]) if cpu["old"] else None
    new = statistics.mean(cpu["new"]) if cpu["new"] else None
    news = [x for x in rec["runs"] if x["recipe"] == "new"]
    all_met = bool(news) and all(x["met"] for x in news)
    ratio = new / old if old and new is not None else None
    if rec.get("quick"):
        verdict = "— (quick)"
    elif ratio is None or len(rec["runs"]) < rec.get("seeds", 0) + rec.get("old_seeds", 0):  # still running
        verdict = "— (incomplete)"
    else:
        verdict = "yes" if all_met and ratio <= GOAL else "**no**"
    return {"old_cpu_s": old, "new_cpu_s": new, "ratio": ratio, "all_new_met": all_met, "within_goal": verdict}


# ---- one run -------------------------------------------------------------------------------------------------------
def busy_s() -> float | None:
    """CPU seconds the whole machine has been busy since boot, all cores (/proc/stat: user nice system irq softirq
    steal), or None where there is no /proc/stat. Across a run, minus the run's own CPU time: what else ran."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def run_one(h: Headline, recipe: str, seed: int, a) -> dict:
    """`python train.py <overrides> seed=S hydra.run.dir=...` in its own process, one thread; CPU s from os.wait4."""
    run_dir = Path(a.work) / h.key / f"{recipe}_s{seed}"
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    overrides = [*getattr(h, recipe), *(h.quick if a.quick else []), *a.set, f"seed={seed}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)}
    load, busy0, t0 = os.getloadavg()[0], busy_s(), time.monotonic()
    with open(run_dir.with_suffix(".log"), "w") as log:
        p = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *overrides, f"hydra.run.dir={run_dir}"],
                             cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall, busy1 = time.monotonic() - t0, busy_s()
    cpu = usage.ru_utime + usage.ru_stime
    others = None if busy0 is None or busy1 is None else max(0.0, busy1 - busy0 - cpu) / max(wall, 1e-9)
    res = json.loads((run_dir / "result.json").read_text()) if (run_dir / "result.json").is_file() else {}
    state = res.get("status") or ("no result.json" if p.returncode == 0 else f"exit {p.returncode}")
    state = f"exit {p.returncode}" if state == "ok" and p.returncode else state
    error = res.get("error") or (None if state == "ok" else f"{state}: see {run_dir}.log")
    metrics = res.get("test") or {}
    return {"recipe": recipe, "seed": seed, "overrides": overrides, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
            "load_1min": round(load, 2), "others": None if others is None else round(others, 2), "status": state,
            "error": error, "steps": res.get("steps"), "metrics": metrics,
            "met": state == "ok" and met(h.check, metrics)}


def order(n_old: int, n_new: int) -> list[tuple[str, int]]:
    """Old and new alternating back to back, seed by seed: old s1, new s1, old s2, new s2, ..."""
    return [(r, s) for s in range(1, max(n_old, n_new) + 1) for r, n in (("old", n_old), ("new", n_new)) if s <= n]


def measure(h: Headline, a, env: dict, out: Path) -> dict:
    cmd = f"python scripts/time_to_target.py --only {h.key}" + (f" --seeds {a.seeds}" if a.seeds != 3 else "") + \
        (f" --old-seeds {a.old_seeds}" if a.old_seeds != 1 else "") + (" --quick" if a.quick else "") + \
        (" --set " + " ".join(shlex.quote(s) for s in a.set) if a.set else "")
    rec = {"key": h.key, "name": h.name, "target": h.target, "check": h.check, "old": h.old, "new": h.new,
           "seeds": a.seeds, "old_seeds": a.old_seeds, "quick": a.quick, "command": cmd, "runs": [], **env}
    for recipe, seed in order(a.old_seeds, a.seeds):
        run = run_one(h, recipe, seed, a)
        rec["runs"].append(run)
        shown = _metrics(run, h.check)
        print(f"time_to_target: {h.key} {recipe} s{seed}: {run['cpu_s']:.1f} CPU s, {run['wall_s']:.1f} s wall, "
              f"load {run['load_1min']:.2f} at start, others {_num(run['others'], '.2f')} cores, {shown}, "
              f"target {'met' if run['met'] else 'NOT met'}", flush=True)
        merge(out, [rec])  # after every run: a long measurement keeps what it has
    return rec


# ---- the section of docs/results.md ----------------------------------------------------------------------------------
def _num(v, fmt: str = ".0f") -> str:
    return "—" if v is None else format(v, fmt)


def _metrics(run: dict, check: str) -> str:
    names = [k for k, _, _ in clauses(check)]
    vals = [f"{k.split('/', 1)[-1]} {_num(run['metrics'].get(k), '.4g')}" for k in names]
    return ", ".join(vals) + ("" if run["status"] == "ok" else f" ({run['status']}: {(run['error'] or '')[:60]})")


def section(recs: list[dict]) -> str:
    cell = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    code = lambda o: "`" + " ".join(o) + "`"  # noqa: E731  (overrides, not a command: the docs' tests run commands)
    lines = [START, "## Time to target", "",
             "Written by `python scripts/time_to_target.py` (`--only KEY ...` merges those headlines into this "
             "section; scripts/reproduce.py keeps it as it is). Each family's headline run, the recipe before "
             "(*old*, today's defaults) against the new one, run back to back on one machine: one run at a time, "
             "one thread, old and new alternating seed by seed (old s1, new s1, old s2, ...). *CPU s* is the user + "
             "system time of the whole train.py process of one seed (imports, data, training, validation, "
             "TensorBoard logging, checkpoints, test); *ratio* is the new recipe's mean over its seeds divided by "
             f"the old one's. The goal (issue 31): every new seed at the target, ratio ≤ {GOAL:.0%}. Was the machine "
             "idle? The per-run table gives each run's wall time, the 1-minute load average when it started (back "
             "to back, the previous run's own 1.0 is still in it) and *others*: the CPU time the rest of the "
             "machine used during the run (/proc/stat), in cores (0.0 when nothing else ran).", ""]
    if not recs:
        return "\n".join([*lines, "Not measured yet.", "", "<!-- time-to-target-data\n[]\n-->", END])
    lines += [f"| headline | target | old recipe | old CPU s | new recipe | new CPU s (mean) | ratio | new seeds | "
              f"met | ≤ {GOAL:.0%} | command |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in recs:
        s = summary(r)
        news = [x for x in r["runs"] if x["recipe"] == "new"]
        seeds = "; ".join(f"s{x['seed']}: {_metrics(x, r['check'])}" for x in news) or "—"
        n_old = sum(x["recipe"] == "old" for x in r["runs"])
        lines.append("| " + " | ".join(cell(c) for c in (
            r["name"] + (" *(quick)*" if r["quick"] else ""), r["target"], code(r["old"]),
            f"{_num(s['old_cpu_s'])} ({n_old} seed{'s' * (n_old != 1)})", code(r["new"]),
            f"{_num(s['new_cpu_s'])} ({len(news)} seed{'s' * (len(news) != 1)})",
            "—" if s["ratio"] is None else f"{s['ratio']:.0%}", seeds,
            f"{sum(x['met'] for x in news)}/{len(news)}", s["within_goal"], f"`{r['command']}`")) + " |")
    lines += ["", "Each run, in the order it ran:", "",
              "| headline | recipe | seed | CPU s | wall s | load at start | others (cores) | test metrics | "
              "target met |", "|---|---|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cell(c) for c in (
        r["key"], x["recipe"], x["seed"], f"{x['cpu_s']:.1f}", f"{x['wall_s']:.1f}", f"{x['load_1min']:.2f}",
        _num(x.get("others"), ".2f"), _metrics(x, r["check"]), "yes" if x["met"] else "**no**")) + " |"
        for r in recs for x in r["runs"]]
    lines += ["", "Where and when each headline ran:", "", "| headline | date | commit | hardware | versions |",
              "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cell(r[k]) for k in ("key", "date", "commit", "hardware", "versions")) + " |"
              for r in recs]
    return "\n".join([*lines, "", "<!-- time-to-target-data\n" + json.dumps(recs, indent=1) + "\n-->", END])


def merge(out: Path, recs: list[dict]) -> None:
    """Replace `recs`' headlines (by key) in `out`'s section, keep the others and the rest of the file; a file without
    the section gets it at its end. Under scripts/reproduce.py's lock of the same file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with reproduce.locked(out):
        text = out.read_text() if out.exists() else ""
        m = SECTION.search(text)
        d = DATA.search(m.group(0)) if m else None
        rows = {r["key"]: r for r in json.loads(d.group(1))} if d else {}
        rows.update({r["key"]: r for r in recs})
        keys = [h.key for h in HEADLINES]
        new = section(sorted(rows.values(), key=lambda r: (keys.index(r["key"]) if r["key"] in keys else len(keys),
                                                            r["key"])))
        text = text[:m.start()] + new + text[m.end():] if m else text.rstrip("\n") + ("\n\n" if text else "") + new + "\n"
        atomic_write_text(out, text)


# ---- the command line ------------------------------------------------------------------------------------------------
def parse(argv: list[str] | None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", metavar="KEY", help=f"headlines to run: {', '.join(h.key for h in HEADLINES)}")
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the new recipe (1..N; default 3)")
    ap.add_argument("--old-seeds", type=int, default=1, help="seeds of the old recipe (1..N; default 1)")
    ap.add_argument("--work", default=None, help="the runs' dirs (default logs/time_to_target/<time>)")
    ap.add_argument("--quick", action="store_true", help="tiny budgets: checks the machinery, measures nothing")
    ap.add_argument("--out", default=None, help="the page to write (default docs/results.md; --quick: <work>/"
                                                "time_to_target.md unless given)")
    ap.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                    help="overrides appended to every run of both recipes (e.g. paths.data_dir=/data)")
    ap.add_argument("--render", action="store_true", help="only rewrite the section from its data block, run nothing")
    a = ap.parse_args(argv)
    known = [h.key for h in HEADLINES]
    bad = [k for k in a.only or [] if k not in known]
    if bad:
        raise BadInput(f"--only {bad[0]}: no such headline; choose from {', '.join(known)}")
    if a.seeds < 1 or a.old_seeds < 0:
        raise BadInput(f"--seeds {a.seeds} --old-seeds {a.old_seeds}: give at least one new seed and no negative count")
    a.work = a.work or str(ROOT / "logs" / "time_to_target" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
    a.out = Path(a.out or (Path(a.work) / "time_to_target.md" if a.quick else ROOT / "docs" / "results.md"))
    return a


def main(argv: list[str] | None = None) -> int:
    try:
        a = parse(argv)
    except BadInput as e:
        print(f"time_to_target: error: {e}", file=sys.stderr)
        return 2
    if a.render:
        merge(a.out, [])
        return 0
    env = reproduce.environment(1, 1)
    env = {k: env[k] for k in ("date", "commit", "hardware", "versions")}
    t0 = time.monotonic()
    recs = [measure(h, a, env, a.out) for h in HEADLINES if a.only is None or h.key in a.only]
    for r in recs:
        s = summary(r)
        print(f"time_to_target: {r['key']}: old {_num(s['old_cpu_s'], '.1f')} CPU s, new {_num(s['new_cpu_s'], '.1f')}"
              f" CPU s, ratio {'—' if s['ratio'] is None else format(s['ratio'], '.0%')}, new seeds all met: "
              f"{s['all_new_met']}, within {GOAL:.0%}: {s['within_goal']}")
    failed = sum(x["status"] != "ok" for r in recs for x in r["runs"])
    print(f"time_to_target: {len(recs)} headlines, {sum(len(r['runs']) for r in recs)} runs ({failed} failed) in "
          f"{time.monotonic() - t0:.0f} s; section written to {a.out}; runs under {a.work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
