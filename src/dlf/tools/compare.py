"""`dlf-compare <dir>` (or `python -m dlf.tools.compare <dir>`): compare the runs under a dir — a sweep dir, or any dir of runs.

Writes <dir>/sweep.csv and sweep.md (one row per run: overrides, status, the monitored metric's best and last, steps,
wall time, the one-line error of a failed job; runs that differ only in their seed aggregated per setting, mean ± std
and n, dlf.tools.seeds) and sweep.png (every run's training cost on one labelled axis, and the monitored metric; a
setting of several seeds as its mean and a ±std band), and prints their paths. The end of every multirun does the
same (dlf.tools.summary.SweepSummary). Over a dir of several sweeps (`dlf-compare logs/`) each sweep's runs stay
together, in job order.

`--fix-tensorboard` first rewrites the event files of run dirs written by dlf up to 23bf94c (an hparams experiment
summary in every run, which TensorBoard takes for the whole log dir; `schema@*` columns; Lightning's `epoch` scalar)
as runs write them now (dlf.callbacks.hparams.fix_run), in place.

Per run it reads `result.json` (what the job wrote at its end), `.hydra/hydra.yaml` (its overrides) and its TensorBoard
event files with TensorBoard's own reader. A damaged event file (truncated, bytes flipped, zero-filled) gives one line
naming that run and marks its row; the other runs are summarized as usual.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dlf.errors import DlfError
from dlf.tools import seeds
from dlf.tools.events import read_scalars
from dlf.tools.sweep_plot import plot


@dataclass
class Run:
    dir: Path
    job: int | None = None
    label: str = ""
    overrides: list[str] = field(default_factory=list)  # its command-line overrides, less the ones left out of dir names
    hydra: bool = False  # its .hydra/hydra.yaml was read
    seed: int | None = None
    test: dict[str, float] = field(default_factory=dict)
    status: str = "unknown"
    monitor: str | None = None
    mode: str | None = None
    best: float | None = None
    last: float | None = None
    steps: int | None = None
    wall_s: float | None = None
    notes: list[str] = field(default_factory=list)
    curves: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    damaged: str | None = None  # one line when an event file could not be read to its end
    choices: dict[str, str] = field(default_factory=dict)  # its Hydra group choices (model: mlp_xor, data: xor, ...)


def find_runs(root: Path) -> list[Path]:
    """Run dirs under root (root itself if it is one): dirs holding .hydra/, result.json or tensorboard/."""
    def is_run(d: Path) -> bool:
        return (d / ".hydra").is_dir() or (d / "result.json").is_file() or (d / "tensorboard").is_dir()

    if is_run(root):
        return [root]
    found = []
    for d, subdirs, _ in os.walk(root):
        subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))  # .submitit/, .hydra/ of the sweep
        if d != str(root) and is_run(Path(d)):
            found.append(Path(d))
            subdirs[:] = []
    return found


def _float(x) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def read_run(run_dir: Path) -> Run:
    """What one run left: its result.json, its overrides and monitor from .hydra/, its scalar curves."""
    from omegaconf import OmegaConf

    run = Run(dir=run_dir, label=run_dir.name)
    m = re.match(r"(\d+)(_|$)", run_dir.name)
    run.job = int(m.group(1)) if m else None
    hydra_yaml, config_yaml = run_dir / ".hydra" / "hydra.yaml", run_dir / ".hydra" / "config.yaml"
    if hydra_yaml.is_file():
        hydra = OmegaConf.load(hydra_yaml).hydra
        run.label = str(hydra.job.get("override_dirname") or "") or "(defaults)"
        run.job = hydra.job.get("num", run.job)
        run.hydra = True
        run.choices = {str(k): str(v) for k, v in (hydra.runtime.get("choices") or {}).items() if v is not None}
        skip = set(OmegaConf.select(hydra, "job.config.override_dirname.exclude_keys", default=[]) or [])
        run.overrides = [str(o) for o in hydra.overrides.task if str(o).split("=", 1)[0].lstrip("+~") not in skip]
    if config_yaml.is_file():
        cfg = OmegaConf.load(config_yaml)
        run.monitor = OmegaConf.select(cfg, "monitor", throw_on_resolution_failure=False)
        run.mode = OmegaConf.select(cfg, "monitor_mode", throw_on_resolution_failure=False)
        run.seed = OmegaConf.select(cfg, "seed", throw_on_resolution_failure=False)
    result_file = run_dir / "result.json"
    if result_file.is_file():
        try:
            res = json.loads(result_file.read_text())
        except (OSError, ValueError) as e:
            res = {}
            run.notes.append(f"result.json unreadable ({type(e).__name__})")
        run.status = str(res.get("status", "unknown"))
        run.monitor, run.mode = res.get("monitor", run.monitor), res.get("mode", run.mode)
        run.best, run.last, run.wall_s = _float(res.get("best")), _float(res.get("last")), _float(res.get("wall_s"))
        run.steps = res.get("steps")
        run.test = {k: v for k, v in (res.get("test") or {}).items() if isinstance(v, (int, float))}
        if res.get("error"):
            run.notes.append(str(res["error"]).strip().splitlines()[0][:200])
    else:
        run.notes.append("no result.json (still running, killed, or made before dlf wrote one)")
    run.curves, run.damaged = read_scalars(run_dir)
    if run.damaged:
        run.notes.append(f"event file damaged ({run.damaged}): curves end where it breaks")
    series = run.curves.get(str(run.monitor)) if run.monitor else None
    if not result_file.is_file() and series and series[1]:  # no result: the event files still tell best and last
        pick = max if run.mode == "max" else min
        run.best, run.last = pick(series[1]), series[1][-1]
    if run.steps is None:
        run.steps = max((c[0][-1] for t, c in run.curves.items() if t.startswith("train/") and c[0]), default=None)
    return run


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.{digits}g}"
    return str(x)


def best_run(runs: list[Run]) -> Run | None:
    """The run with the best monitored value, if every run monitors the same metric the same way."""
    if len({(r.monitor, r.mode) for r in runs}) != 1:
        return None
    ok = [r for r in runs if r.status == "ok" and r.best is not None and math.isfinite(r.best)]
    if not ok:
        return None
    return (max if runs[0].mode == "max" else min)(ok, key=lambda r: r.best)


HEADER = ("job", "overrides", "status", "monitor", "best", "last", "steps", "wall_s", "note", "run_dir")
SEED_HEADER = ("setting", "seed", "n", "best_mean", "best_std", "last_mean", "last_std")  # the run's setting's


def _row(r: Run) -> list[str]:
    wall = None if r.wall_s is None else round(r.wall_s, 1)
    return [_fmt(r.job), r.label, r.status + (" (events damaged)" if r.damaged else ""), r.monitor or "",
            _fmt(r.best), _fmt(r.last), _fmt(r.steps), _fmt(wall), "; ".join(r.notes), str(r.dir)]


def write_csv(runs: list[Run], settings: list[seeds.Setting], path: Path) -> None:
    """One row per run; its setting (overrides less seed), seed, and the setting's n, mean and std of best and last."""
    of = {id(r): s for s in settings for r in s.runs}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER + SEED_HEADER)
        for r in runs:
            s = of[id(r)]
            (bm, bs, _), (lm, ls, _) = s.stat(lambda x: x.best), s.stat(lambda x: x.last)
            w.writerow(_row(r) + [s.label, _fmt(r.seed), s.n] + [_fmt(v, 6) for v in (bm, bs, lm, ls)])


def seeds_table(settings: list[seeds.Setting]) -> list[str]:
    """sweep.md's table of the settings run with several seeds: mean ± std of best, last and each test metric."""
    tests = sorted({k for s in settings for r in s.runs for k in r.test})
    lines = ["## Seeds aggregated: mean ± std over the n runs of a setting", "",
             "| setting | n | seeds | best | last | " + " | ".join(tests) + (" |" if tests else "|"),
             "|" + "---|" * (5 + len(tests))]
    for s in settings:
        if s.n > 1:
            cells = [s.label, str(s.n), s.seeds(), s.cell(lambda r: r.best), s.cell(lambda r: r.last)]
            cells += [s.cell(lambda r, k=k: r.test.get(k)) for k in tests]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines + [""]


def fixed_overrides(runs: list[Run]) -> list[str]:
    """The overrides every run of a sweep shares (empty for a single run)."""
    if len(runs) < 2 or not all(r.overrides for r in runs):
        return []
    return sorted(set.intersection(*(set(r.overrides) for r in runs)))


def markdown(runs: list[Run], figure: str | None, common: list[str] = (),
             settings: list[seeds.Setting] = (), root: Path | None = None) -> str:
    best = best_run(runs)
    counts = ", ".join(f"{sum(r.status == s for r in runs)} {s}" for s in dict.fromkeys(r.status for r in runs))
    lines = [f"# Sweep summary: {len(runs)} runs ({counts})", ""]
    if common:
        lines += [f"Every run: `{' '.join(common)}`", ""]
    if best is not None:
        lines += [f"Best by {best.monitor} ({best.mode}): job {_fmt(best.job)} `{best.label}`, {_fmt(best.best)}", ""]
    if any(s.n > 1 for s in settings):
        lines += seeds_table(settings)
    parents = list(dict.fromkeys(r.dir.parent for r in runs))
    for parent in parents:  # several sweeps (dlf-compare logs/): a table each, in job order
        if len(parents) > 1:
            lines += [f"## {parent.relative_to(root) if root and parent.is_relative_to(root) else parent}", ""]
        lines += ["| " + " | ".join(HEADER[:-1]) + " |", "|" + "---|" * (len(HEADER) - 1)]
        for r in (r for r in runs if r.dir.parent == parent):
            cells = [c.replace("|", "\\|") for c in _row(r)[:-1]]
            if r is best:
                cells[1] = f"**{cells[1]}**"
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if figure:
        lines += [f"![training cost and {runs[0].monitor or 'monitored metric'} of every run]({figure})"]
    return "\n".join(lines) + "\n"


@dataclass
class Report:
    dir: Path
    runs: list[Run]
    paths: list[Path]

    def text(self) -> str:
        lines = [f"dlf-compare: {r.dir.name}: event file damaged ({r.damaged}): row marked, curves end where it breaks"
                 for r in self.runs if r.damaged]
        lines += [(self.dir / "sweep.md").read_text().rstrip(), "", "Sweep summary written:"]
        lines += [f"  {p}" for p in self.paths]
        return "\n".join(lines)


def summarize(root: Path, out: Path | None = None, figure: bool = True, report: bool = True) -> Report:
    """Read every run under root; write sweep.csv, sweep.md, (figure=True) sweep.png and (report=True) report.html
    into out (default root)."""
    root, out = Path(root), Path(out or root)
    if not root.is_dir():
        raise DlfError(f"{root} is not a directory: pass a sweep dir (logs/<task>/multiruns/<time>) or a dir of runs")
    dirs = find_runs(root)
    if not dirs:
        raise DlfError(f"no runs under {root}: pass a sweep dir (logs/<task>/multiruns/<time>) or a dir of run dirs")
    # each sweep's runs together (dlf-compare logs/ over several sweeps), in job order within it
    runs = sorted((read_run(d) for d in dirs),
                  key=lambda r: (str(r.dir.parent), r.job is None, r.job if r.job is not None else 0, str(r.dir)))
    common = fixed_overrides(runs)
    for r in runs:  # label a run by what differs between the runs: optimizer=adam, not the overrides they all share
        if common and r.overrides:
            r.label = ",".join(o for o in sorted(r.overrides) if o not in common) or "(the shared overrides only)"
    seen: dict[str, int] = {}
    for r in runs:  # two runs with the same overrides (e.g. two plain runs) are told apart by their dir
        seen[r.label] = seen.get(r.label, 0) + 1
    for r in runs:
        if seen[r.label] > 1 and r.job is None:
            r.label = f"{r.label} [{r.dir.name}]"
    settings = seeds.group(runs, common)
    out.mkdir(parents=True, exist_ok=True)
    png = out / "sweep.png"
    drew = figure and plot(settings, png)
    (out / "sweep.md").write_text(markdown(runs, png.name if drew else None, common, settings, root))
    write_csv(runs, settings, out / "sweep.csv")
    paths = [out / "sweep.md", out / "sweep.csv"] + ([png] if drew else [])
    if report and out.resolve() not in {r.dir.resolve() for r in runs}:  # a run dir keeps its own report.html
        paths.append(html_report(out, runs, settings, png if drew else None, root))
    return Report(out, runs, paths)


def html_report(out: Path, runs: list[Run], settings: list[seeds.Setting], figure: Path | None, root: Path) -> Path:
    """report.html (dlf.tools.report): the seeds table and each sweep's runs, sweep.png, every job's curves."""
    from dlf.tools.report import sweep_report

    tests = sorted({k for s in settings for r in s.runs for k in r.test})
    agg = [[s.label, s.n, s.seeds(), s.cell(lambda r: r.best), s.cell(lambda r: r.last)]
           + [s.cell(lambda r, k=k: r.test.get(k)) for k in tests] for s in settings if s.n > 1]
    tables = [("Seeds aggregated: mean ± std over the n runs of a setting",
               ("setting", "n", "seeds", "best", "last", *tests), agg)]
    for parent in dict.fromkeys(r.dir.parent for r in runs):
        name = parent.relative_to(root) if parent.is_relative_to(root) and parent != root else parent.name
        tables.append((f"Runs: {name}", HEADER[:-1], [_row(r)[:-1] for r in runs if r.dir.parent == parent]))
    best = best_run(runs)
    title = f"dlf sweep: {out.name}, {len(runs)} runs" + (f", best {best.monitor} {_fmt(best.best)} (job "
                                                           f"{_fmt(best.job)} {best.label})" if best else "")
    jobs = [(f"{_fmt(r.job)} {r.label}".strip(), r.dir, r.curves) for r in runs]
    return sweep_report(out, tables, jobs, figure, title)


def fix_tensorboard(root: Path) -> None:
    """--fix-tensorboard: each run dir's event files as dlf writes them now (dlf.callbacks.hparams.fix_run)."""
    from dlf.callbacks.hparams import fix_run

    if not Path(root).is_dir():
        raise DlfError(f"{root} is not a directory: pass a log dir, a sweep dir or a run dir")
    for d in find_runs(Path(root)):
        for f in fix_run(d):
            print(f"dlf-compare: rewritten as dlf writes event files now: {f}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="dlf-compare", description=__doc__.split("\n\n")[0])
    p.add_argument("dir", type=Path, help="a sweep dir (logs/<task>/multiruns/<time>) or any dir of run dirs")
    p.add_argument("--out", type=Path, default=None, help="where sweep.csv/md/png go (default: the dir itself)")
    p.add_argument("--no-figure", action="store_true", help="tables only")
    p.add_argument("--no-report", action="store_true", help="no report.html")
    p.add_argument("--fix-tensorboard", action="store_true",
                   help="first rewrite, in place, the event files of run dirs written by dlf up to 23bf94c (each with "
                        "an hparams experiment summary that TensorBoard takes for the whole log dir) as dlf writes "
                        "them now")
    args = p.parse_args(argv)
    try:
        if args.fix_tensorboard:
            fix_tensorboard(args.dir)
        report = summarize(args.dir, args.out, figure=not args.no_figure, report=not args.no_report)
    except DlfError as e:
        print(f"dlf: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(report.text())


if __name__ == "__main__":
    main()
