"""Reproduce dlf's results table: every family's headline runs through the real CLI, merged into docs/results.md.

    python scripts/reproduce.py --seeds 3                        # everything (XOR: 20 seeds), ~hours on 2 cores
    python scripts/reproduce.py --families mnist1d adding        # some families; the other families' rows are kept
    python scripts/reproduce.py --quick --out /tmp/results.md    # a few minutes: tiny budgets, 1-2 seeds, same table

Each row is one Hydra multirun of `python train.py -m <overrides> seed=1,...,n` (the basic launcher, or joblib with
`--jobs N`), with `hydra.sweep.dir` under `--workdir`; every job writes its `result.json` (status, steps, wall time and
its test/* metrics), which this script reads. Torch gets `--threads` threads a job (OMP_NUM_THREADS and the sweep's
`threads_per_job`). A row's mean is compared with its target and shown beside the published number. The table is
rewritten after every row, merged by row key with what the file held (rows of families not run are kept), under a lock;
the file's "Time to target" section (scripts/time_to_target.py's) is kept as it is, after the table.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from dlf.faults import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("xor", "mnist1d", "adding", "adding1997", "text", "digits", "fashion", "gan_ring", "gan_grid", "dcgan")
SHORT = ["trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2"]  # --quick budgets
SEQ = ["trainer.max_time=null"]  # a fixed budget: steps, not a wall clock that depends on the machine's load
PUB_1D = "MNIST-1D paper: "
# The image GANs' Fréchet distance in dlf's feature nets (dlf.metrics.frechet), its floor (N real training images) and
# its ceiling (N images of uniform noise), all against the same N test images
FD = [("test/fd", "g"), ("test/fd_floor", "g"), ("test/fd_noise", "g")]


@dataclass
class Row:
    key: str
    family: str
    name: str
    overrides: list[str]
    metrics: list[tuple[str, str]]            # (test metric, format); the first one is the headline
    target: list[tuple[str, str, float]] = field(default_factory=list)  # (metric, '>=' | '<', value) on the mean
    target_text: str = "report"
    published: str = "—"
    seeds: int | None = None                  # None: --seeds
    quick: list[str] = field(default_factory=lambda: list(SHORT))


def _adding(net: str, t: int) -> Row:
    target = [("test/mse", "<", 0.01)] if net == "lstm" and t in (100, 200) else []
    steps = ["trainer.max_steps=2500"] if net == "lstm" and t == 200 else []  # the recipe's 1,250 are T = 100's
    return Row(f"adding_{net}_T{t}", "adding",
               f"adding problem, {'LSTM' if net == 'lstm' else 'tanh RNN'}, T = {t}{' (2,500 steps)' if steps else ''}",
               [f"experiment={net}_adding", f"data.seq_len={t}", *steps, *SEQ], [("test/mse", "g")], target,
               "test MSE < 0.01" if target else "report", "baseline (always 1) 0.167",
               quick=["trainer.max_steps=20", "trainer.val_check_interval=10", "trainer.limit_val_batches=2"])


def _adding_1997(t: int, published: str, seeds: int | None = None, extra: tuple[str, ...] = ()) -> Row:
    """Hochreiter & Schmidhuber's own form (experiment=lstm_adding_1997): training sequences until no validation
    sequence of 2,560 is off by >= 0.04 and the training MSE is < 0.01 (steps x batch 50), and the wrong test
    sequences of 2,560. A seed that never meets the criterion has no sequences_to_success (its wrong count shows it)."""
    return Row(f"adding1997_lstm_T{t}", "adding1997",
               f"adding problem, 1997 form, LSTM, T = {t} (experiment=lstm_adding_1997, batch 50)",
               ["experiment=lstm_adding_1997", f"data.seq_len={t}", *extra],
               [("test/sequences_to_success", "seq"), ("test/wrong", "g")], published=published, seeds=seeds,
               quick=["trainer.max_steps=20", "trainer.val_check_interval=10", "data.n_train=1000", "data.n_val=100",
                      "data.n_test=100"])


ROWS = [
    Row("xor", "xor", "XOR, MLP 2-5-1 (model=mlp_xor, 500 steps)", [], [("test/solved", "seeds")],
        [("test/solved", ">=", 0.95)], "≥ 19/20 seeds solved", "—", seeds=20, quick=["trainer.max_epochs=2"]),
    Row("mnist1d_logistic", "mnist1d", "MNIST-1D, logistic regression (MLP, no hidden layer)",
        ["model=mlp", "model.net.hidden=[]"], [("test/acc", "pct")], published=PUB_1D + "logistic 32%"),
    Row("mnist1d_mlp", "mnist1d", "MNIST-1D, MLP 100-100", ["model=mlp"], [("test/acc", "pct")],
        published=PUB_1D + "MLP 68%"),
    Row("mnist1d_cnn", "mnist1d", "MNIST-1D, 1-D CNN, shift augmentation", ["experiment=cnn1d_mnist1d"],
        [("test/acc", "pct")], [("test/acc", ">=", 0.94)], "≥ 94%", PUB_1D + "CNN 94%"),
    Row("mnist1d_rnn", "mnist1d", "MNIST-1D, tanh RNN", ["model=rnn"], [("test/acc", "pct")],
        published=PUB_1D + "GRU 91%"),
    Row("mnist1d_lstm", "mnist1d", "MNIST-1D, LSTM (experiment=lstm_mnist1d)", ["experiment=lstm_mnist1d"],
        [("test/acc", "pct")],
        [("test/acc", ">=", 0.97)], "≥ 97%", PUB_1D + "GRU 91%, human 96%"),
    *[_adding(net, t) for t in (50, 100, 200) for net in ("rnn", "lstm")],
    Row("adding_lstm_T400", "adding", "adding problem, LSTM, T = 400 (5,000 steps, one seed)",
        ["experiment=lstm_adding", "data.seq_len=400", "trainer.max_steps=5000", *SEQ], [("test/mse", "g")],
        published="baseline (always 1) 0.167", seeds=1,
        quick=["trainer.max_steps=20", "trainer.val_check_interval=10", "trainer.limit_val_batches=2"]),
    _adding_1997(100, "1997 paper (Table 7; online, 93 weights): success after 74,000 sequences"),
    _adding_1997(500, "1997 paper (Table 7): success after 209,000 sequences", seeds=1,
                 extra=("data.n_train=20000",)),  # 20,000 x 550 steps x 2 floats: 88 MB (100,000: 440 MB)
    Row("text_lstm", "text", "character LM, LSTM (experiment=lstm_text)", ["experiment=lstm_text"],
        [("test/ppl", "f2")], [("test/ppl", "<", 20.1)], "perplexity < 20.1 (the corpus's unigram)",
        "unigram perplexity 20.1"),
    Row("digits_cnn", "digits", "8x8 digits, CNN (model=cnn)", ["model=cnn"], [("test/acc", "pct")],
        [("test/acc", ">=", 0.985)], "≥ 98.5%", "scikit-learn's SVC 99.1%"),
    Row("cnn_fashion", "fashion", "Fashion-MNIST, CNN (experiment=cnn_fashion)", ["experiment=cnn_fashion"],
        [("test/acc", "pct")], [("test/acc", ">=", 0.932)], "≥ 93.2%",
        "Fashion-MNIST benchmark: 2 conv + 3 FC 93.2%, 3 conv + pooling + 2 FC 92.6%",
        quick=["trainer.max_epochs=1", "trainer.max_steps=20", "trainer.limit_val_batches=2"]),
    Row("gan_ring", "gan_ring", "GAN, ring of 8 Gaussians (model=gan)", ["model=gan"],
        [("test/modes", "modes8"), ("test/high_quality", "%")],
        [("test/modes", ">=", 8), ("test/high_quality", ">=", 90)], "8/8 modes, ≥ 90% high quality",
        "PacGAN's vanilla GAN 6.3/8 modes",
        quick=["trainer.max_epochs=1", "trainer.limit_train_batches=20"]),
    Row("gan_ring_pac", "gan_ring", "GAN, ring of 8 Gaussians, packing 2 + EMA of G (experiment=gan_ring)",
        ["experiment=gan_ring"], [("test/modes", "modes8"), ("test/high_quality", "%")],
        [("test/modes", ">=", 8), ("test/high_quality", ">=", 95)], "8/8 modes, ≥ 95% high quality",
        "PacGAN: vanilla GAN 6.3/8, PacGAN4 7.8/8 modes, 95.9%",
        quick=["trainer.max_epochs=1", "trainer.limit_train_batches=20"]),
    Row("gan_grid", "gan_grid", "GAN, grid of 25 Gaussians (experiment=gan_grid)", ["experiment=gan_grid"],
        [("test/modes", "modes25"), ("test/high_quality", "%")],
        [("test/modes", ">=", 24), ("test/high_quality", ">=", 90)], "≥ 24/25 modes, ≥ 90% high quality",
        "PacGAN: vanilla GAN 17.3/25, PacGAN4 24.8/25 modes",
        quick=["trainer.max_epochs=1", "trainer.limit_train_batches=20"]),
    Row("dcgan_digits", "dcgan", "DCGAN, 8x8 digits (model=dcgan)", ["model=dcgan"],
        [("test/modes", "modes10"), ("test/high_quality", "%"), *FD], published="—"),
    Row("dcgan_fashion", "dcgan", "DCGAN, Fashion-MNIST (experiment=dcgan_fashion)", ["experiment=dcgan_fashion"],
        [("test/modes", "modes10"), ("test/high_quality", "%"), *FD], published="—",
        quick=["trainer.max_epochs=1", "trainer.limit_train_batches=20", "trainer.limit_val_batches=2"]),
]
COURSE = [(0.01, 10_000), (0.01, 100_000), (0.1, 10_000), (0.5, 10_000), (1.0, 10_000), (2.0, 10_000)]


def fmt(v: float, how: str, std: float | None = None) -> str:
    pm = lambda f: f if std is None else f"{f} ± "  # noqa: E731
    if how == "%":  # logged in percent already
        return f"{v:.1f}%" if std is None else f"{v:.1f} ± {std:.1f}%"
    if how == "pct":
        return f"{100 * v:.1f}%" if std is None else f"{100 * v:.1f} ± {100 * std:.1f}%"
    if how.startswith("modes"):
        return (f"{v:.1f}" if std is None else f"{v:.1f} ± {std:.1f}") + f"/{how[5:]}"
    if how == "f2":
        return pm(f"{v:.2f}") + ("" if std is None else f"{std:.2f}")
    return pm(f"{v:.3g}") + ("" if std is None else f"{std:.2g}")


def headline(rec: dict) -> str:
    """mean ± std over the seeds of each metric, e.g. `98.4 ± 0.2%`, or `20/20 seeds` for XOR."""
    parts = []
    for metric, how in rec["metrics"]:
        raw = rec["values"].get(metric, [])
        vals = [v for v in raw if v is not None and v == v]  # None / NaN: no value
        if how == "seq" and raw:  # training sequences to success; no value: that seed never met the criterion
            solved = f"{len(vals)}/{len(raw)} seeds solved"
            parts.append(f"not solved ({solved})" if not vals else
                         f"{statistics.mean(vals):,.0f} ± {statistics.stdev(vals) if len(vals) > 1 else 0.0:,.0f}"
                         + (f" sequences ({solved})" if len(vals) < len(raw) else " sequences"))
        elif not vals:
            parts.append(f"{metric}: no value")
        elif how == "seeds":
            parts.append(f"{sum(v >= 0.5 for v in vals)}/{len(vals)} seeds")
        else:
            std = statistics.stdev(vals) if len(vals) > 1 else 0.0
            parts.append(fmt(statistics.mean(vals), how, std) + ("" if len(parts) == 0 else f" {metric[5:]}"))
    return ", ".join(parts)


def met(rec: dict) -> str:
    if not rec["target"]:
        return "—"
    if rec.get("quick"):
        return "— (quick)"
    ok = True
    for metric, op, value in rec["target"]:
        vals = [v for v in rec["values"].get(metric, []) if v is not None]
        m = statistics.mean(vals) if vals else float("nan")
        ok &= (m >= value) if op == ">=" else (m < value)
    return "yes" if ok else "**no**"


def environment(threads: int, jobs: int) -> dict:
    import hydra
    import lightning
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else \
        platform.processor()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit + ("+" if dirty else ""),
            "hardware": f"{cpu}, {os.cpu_count()} cores", "threads": threads, "jobs": jobs,
            "versions": f"torch {torch.__version__}, lightning {lightning.__version__}, hydra {hydra.__version__}"}


def run_row(row: Row, a, env: dict) -> dict:
    n = 1 if a.quick and row.seeds is None else (2 if a.quick else (row.seeds or a.seeds))
    extra = row.quick if a.quick else []
    seeds = ",".join(str(s) for s in range(1, n + 1))
    args = ["-m", *row.overrides, *extra, f"seed={seeds}", f"hydra.callbacks.sweep_summary.threads_per_job={a.threads}"]
    if a.jobs > 1:
        args += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={a.jobs}"]
    sweep = Path(a.workdir).resolve() / row.key
    shown = f"OMP_NUM_THREADS={a.threads} python train.py " + " ".join(shlex.quote(x) for x in args)
    print(f"reproduce: {row.key}: {shown}", flush=True)
    t0 = time.monotonic()
    sweep.mkdir(parents=True, exist_ok=True)
    with open(sweep.with_suffix(".log"), "w") as log:
        rc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args, f"hydra.sweep.dir={sweep}"], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads),
                                 "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
                            ).returncode
    wall = time.monotonic() - t0
    results = [json.loads(f.read_text()) for f in sorted(sweep.glob("*/result.json"))]
    ok = [r for r in results if r["status"] == "ok"]
    errors = sorted({r.get("error") or r["status"] for r in results if r["status"] != "ok"})
    if rc and not errors:
        errors = [f"exit {rc}: see {sweep.with_suffix('.log')}"]
    return {"key": row.key, "family": row.family, "name": row.name, "command": shown, "seeds": n,
            "ok": len(ok), "errors": errors, "metrics": row.metrics, "target": row.target,
            "target_text": row.target_text, "published": row.published, "quick": a.quick,
            "values": {m: [r.get("test", {}).get(m) for r in ok] for m, _ in row.metrics},
            "steps": statistics.mean(r["steps"] for r in ok) if ok else 0,
            "job_wall_s": statistics.mean(r["wall_s"] for r in ok) if ok else None, "wall_s": wall, **env}


def run_course(a, env: dict) -> list[dict]:
    """The course's XOR exercise (GD on J = 1/2 sum, 2-5-1 sigmoid, N(0,1) weights) and the learning rates that solve
    it: a plain batched loop over 20 seeds (scripts/xor_course.py), not a train.py run."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from xor_course import course_gd

    cmd = "python scripts/xor_course.py (plain loop)"

    out = []
    for alpha, steps in COURSE[:2] if a.quick else COURSE:
        steps = steps // 100 if a.quick else steps
        t0 = time.monotonic()
        solved, first = course_gd(20, alpha, steps, 0.25)
        wall = time.monotonic() - t0
        med = f", median first step solved {statistics.median(first):,.0f}" if first else ""
        out.append({"key": f"xor_course_{alpha}_{steps}", "family": "xor", "name": f"XOR course exercise, GD α = "
                    f"{alpha}, {steps:,} steps", "command": cmd,
                    "seeds": 20, "ok": 20, "errors": [], "metrics": [["solved", "text"]], "target": [],
                    "target_text": "report", "published": "—", "quick": a.quick, "text": f"{solved}/20 seeds{med}",
                    "values": {}, "steps": steps, "job_wall_s": wall / 20, "wall_s": wall, **env})
    return out


DATA = re.compile(r"<!-- reproduce-data\n(.*?)\n-->", re.S)
# scripts/time_to_target.py's section of the same file: kept as it is (re-emitted after this table) when merge rewrites
KEEP = re.compile(r"<!-- time-to-target:start.*?<!-- time-to-target:end -->", re.S)


README = ROOT / "README.md"
MARKS = ("<!-- results:start (scripts/reproduce.py writes this table from docs/results.md) -->", "<!-- results:end -->")


@contextlib.contextmanager
def locked(out: Path):
    """One lock per table file, outside the tree: parts of a reproduction (and scripts/time_to_target.py) write at once."""
    tag = hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"dlf-reproduce-{tag}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def merge(out: Path, recs: list[dict], readme: Path | None = None) -> None:
    """Replace `recs`' rows (by key) in `out`, keep the others, rewrite the table; under a lock (parts run at once).
    `readme`: also rewrite the short table between MARKS there."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with locked(out):
        old = out.read_text() if out.exists() else ""
        m, kept = DATA.search(old), KEEP.search(old)
        rows = {r["key"]: r for r in json.loads(m.group(1))} if m else {}
        rows.update({r["key"]: r for r in recs})
        order = [r.key for r in ROWS]
        keys = sorted(rows, key=lambda k: (order.index(k) if k in order else
                                           (0.5 if k.startswith("xor_course") else len(order)), k))
        atomic_write_text(out, markdown([rows[k] for k in keys]) + (f"\n{kept.group(0)}\n" if kept else ""))
        text = readme.read_text() if readme and readme.exists() else ""
        if MARKS[0] in text and MARKS[1] in text:
            head, rest = text.split(MARKS[0], 1)
            short = [rows[k] for k in keys if not k.startswith("xor_course") or k == "xor_course_0.01_10000"]
            atomic_write_text(readme, head + MARKS[0] + "\n" + short_table(short) + MARKS[1] + rest.split(MARKS[1], 1)[1])


def short_table(rows: list[dict]) -> str:
    """README's table: experiment, result, target, published; the full rows are in docs/results.md."""
    lines = ["| experiment | result (mean ± std over seeds) | target | published |", "|---|---|---|---|"]
    for r in rows:
        res = r.get("text") or headline(r)
        res += "" if res.endswith("seeds") else f" ({r['seeds']} seeds)"
        mark = {"yes": " ✓", "**no**": " — **missed**"}.get(met(r), "")
        lines.append(f"| {r['name']} | {res} | {r['target_text']}{mark} | {r['published']} |".replace("\n", " "))
    return "\n".join(lines) + "\n"


def feature_nets() -> list[str]:
    """A paragraph on the feature nets of the DCGAN rows' Fréchet distance, from their cards (name, sha256, accuracy)."""
    cards = sorted((ROOT / "src" / "dlf" / "metrics" / "feature_nets").glob("*.json"))
    if not cards:
        return []
    nets = [json.loads(c.read_text()) for c in cards]
    return ["The DCGAN rows' *fd* is a Fréchet distance between N samples and N test images in the features of a "
            "classifier dlf ships (docs/gan.md; not Inception's FID, and comparable only within one dataset and N), "
            "beside its floor *fd_floor* (N real training images against the same N test images) and its ceiling "
            "*fd_noise* (N images of uniform noise); N = min(model.n_eval, test images): 360 for the digits, 2,500 "
            "for Fashion-MNIST. The feature nets, written by scripts/train_feature_nets.py (seed 0): "
            + "; ".join(f"{n['name']} ({n['train_images']:,} training images, test accuracy "
                        f"{100 * n['test_acc']:.1f}%, sha256 {n['sha256']})" for n in nets) + ".", ""]


def markdown(rows: list[dict]) -> str:
    cell = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["# dlf's results, reproduced", "",
             "Written by `python scripts/reproduce.py --seeds 3` (XOR: 20 seeds; parts with `--families ...` merge "
             "into this file). Each row is the mean ± standard deviation over the seeds (1, 2, ...) of the test metric, "
             "from one Hydra multirun of the command shown; *wall* is the whole multirun (imports included) and the "
             "mean per run (wall times depend on what else the machine was running; the metrics do not). The XOR course "
             "rows are a batched plain loop over seeds 0-19 (the course table's script). Published numbers: the "
             "MNIST-1D paper (Greydanus 2020), the adding problem's always-1 baseline, PacGAN (Lin et al. 2018), "
             "scikit-learn's SVC on its digits. Do not edit: rerun the script.", "", *feature_nets(),
             "| experiment | result (mean ± std) | seeds | target | met | published | steps | wall (mean per run) "
             "| command |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        res = r.get("text") or headline(r)
        if r["errors"]:
            res += f" ({r['seeds'] - r['ok']} failed: {r['errors'][0][:80]})"
        lines.append("| " + " | ".join(cell(x) for x in (
            r["name"] + (" *(quick)*" if r["quick"] else ""), res, r["seeds"], r["target_text"], met(r),
            r["published"], f"{r['steps']:,.0f}", f"{r['wall_s']:.0f} s ({r['job_wall_s'] or 0:.1f} s)",
            f"`{r['command']}`")) + " |")
    lines += ["", "Where and when each row ran:", "",
              "| experiment | date | commit | hardware | threads a run | runs at once | versions |",
              "|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cell(r[k]) for k in ("key", "date", "commit", "hardware", "threads", "jobs", "versions"))
              + " |" for r in rows]
    return "\n".join(lines) + "\n\n<!-- reproduce-data\n" + json.dumps(rows, indent=1) + "\n-->\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--rows", nargs="+", default=["*"], help="row keys to run (globs, in this order), e.g. 'adding_*_T200'")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="tiny budgets, 1 seed (XOR 2): a few minutes")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--jobs", type=int, default=1, help="runs of a row at once (Hydra's joblib launcher)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    ap.add_argument("--render", action="store_true", help="only rewrite the tables from the stored rows, run nothing")
    ap.add_argument("--readme", default=None, help="README to update (default: README.md when --out is the default)")
    ap.add_argument("--workdir", default=None, help="the sweeps' dirs (default logs/reproduce/<time>)")
    a = ap.parse_args(argv)
    a.workdir = a.workdir or str(ROOT / "logs" / "reproduce" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
    default_out = Path(a.out).resolve() == (ROOT / "docs" / "results.md").resolve()
    readme = Path(a.readme) if a.readme else (README if default_out and not a.quick else None)
    if a.render:
        return merge(Path(a.out), [], readme)
    env = environment(a.threads, a.jobs)
    t0 = time.monotonic()
    rank = lambda r: next((i for i, p in enumerate(a.rows) if fnmatch.fnmatch(r.key, p)), None)  # noqa: E731
    rows = sorted((r for r in ROWS if r.family in a.families and rank(r) is not None), key=rank)  # in --rows order
    if "xor" in a.families and any(fnmatch.fnmatch("xor_course", p) for p in a.rows):
        merge(Path(a.out), run_course(a, env), readme)
    for row in rows:
        rec = run_row(row, a, env)
        merge(Path(a.out), [rec], readme)
        print(f"reproduce: {row.key}: {headline(rec)} ({rec['ok']}/{rec['seeds']} ok, {rec['wall_s']:.0f} s)",
              flush=True)
    print(f"reproduce: total {time.monotonic() - t0:.0f} s for {len(rows)} rows; table: {a.out}")


if __name__ == "__main__":
    main()
