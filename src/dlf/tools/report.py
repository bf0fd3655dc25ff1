"""report.html: a run's or a sweep's report, one self-contained file a person opens from disk — no server, no network.

Every image is a PNG embedded as a data: URI and the page carries its own few lines of CSS, no script. A run's report
(written when its job ends: the Hydra callback `Reports`, hydra.callbacks.report in configs/hydra/default.yaml; `report:
false` turns it off) holds the command, the resolved config, the test metrics and what the run said (train.log's dlf
lines: predictions, health), its metric curves (train and val of a metric on one chart, drawn here from the run's
logged metrics: its TensorBoard events, else the CSV logger's metrics.csv) and every PNG the run wrote (plots/). A
sweep's (dlf.tools.compare.summarize, so at the end of every multirun and by dlf-compare) holds the sweep's tables —
seeds aggregated, mean ± std (dlf.tools.seeds) — sweep.png, every job's curves on shared axes and a link to each job's
report. `python scripts/bench_report.py` measures what it adds to an XOR run (at most 0.3 s; tests/test_report.py
holds the page under 1 MB).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dlf.faults import atomic_write_text
from dlf.tools.events import read_scalars

STAGES = ("train", "val")  # the curves drawn: train/<name> and val/<name> of a metric on one chart
MAX_CHARTS = 6
DPI = 80

CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd;padding-bottom:3px}
code,pre{font:12.5px/1.4 ui-monospace,monospace;background:#f5f5f5}pre{padding:10px;overflow:auto;max-height:420px;
white-space:pre-wrap}.figs{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f0f0f0}img{max-width:100%;border:1px solid #eee;margin:4px 0}figure{margin:0 0 14px;max-width:100%}
figcaption{font-size:12px;color:#555}.muted{color:#666}details summary{cursor:pointer;margin:6px 0}"""


def _e(x) -> str:
    return html.escape(str(x))


def img(data: bytes, alt: str) -> str:
    """An <img> whose PNG bytes travel inside the page."""
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def _cell(x) -> str:
    return _e(f"{x:.4g}" if isinstance(x, float) else "" if x is None else x)


def table(header, rows) -> str:
    """A table; header None: the first column names each row."""
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<th>{_cell(c)}</th>" if not header and i == 0 else f"<td>{_cell(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def page(title: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{_e(h)}</h2>\n{content}\n" for h, content in sections if content)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,">'
            f"<style>{CSS}</style></head>\n<body><h1>{_e(title)}</h1>\n{body}</body></html>\n")


def write(path: Path, text: str) -> Path:
    """Written whole or not at all (a temp file renamed)."""
    return atomic_write_text(path, text)


# ------------------------------------------------------------------------------------------------------------- curves

def csv_scalars(run_dir: Path) -> dict[str, tuple[list[int], list[float]]]:
    """The CSV logger's metrics.csv (logger=csv) as {tag: (steps, values)}."""
    curves: dict[str, tuple[list[int], list[float]]] = {}
    for f in sorted(run_dir.rglob("metrics.csv")):
        with open(f, newline="") as fh:
            for row in csv.DictReader(fh):
                for tag, v in row.items():
                    if tag in ("step", "epoch") or v in ("", None):
                        continue
                    steps, values = curves.setdefault(tag, ([], []))
                    steps.append(int(float(row.get("step") or 0)))
                    values.append(float(v))
    return curves


def charts(runs: list[tuple[str, dict]]) -> list[str]:
    """The metric names to chart: those logged as train/<name> or val/<name>, the monitored cost first."""
    names: dict[str, None] = {}
    for _, curves in runs:
        for tag in curves:
            stage, _, name = tag.partition("/")
            if stage in STAGES and name and "/" not in name:
                names[name] = None
    return sorted(names, key=lambda n: ("loss" not in n, n))[:MAX_CHARTS]


def curves_png(runs: list[tuple[str, dict]], title: str) -> bytes | None:
    """One chart per metric, train (solid) and val (dashed) on it; several runs (a sweep's jobs) share its axes, one
    colour a run. None if nothing was logged."""
    from matplotlib import ticker
    from matplotlib.figure import Figure

    names = charts(runs)
    if not names:
        return None
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    legend_w = 3.2 if len(runs) > 1 else 0.0
    width = 4.2 * cols + legend_w
    fig = Figure(figsize=(width, 2.9 * rows))  # margins set, not laid out: a layout engine draws the figure twice
    fig.subplots_adjust(left=0.6 / width, right=1 - (legend_w + 0.15) / width, bottom=0.5 / (2.9 * rows),
                        top=1 - 0.55 / (2.9 * rows), wspace=0.28, hspace=0.55)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        for i, (label, curves) in enumerate(runs):
            named = False  # a sweep's legend: one entry a job (its colour); a run's: train and val
            for stage, style in zip(STAGES, ("-", "--")):
                steps, values = curves.get(f"{stage}/{name}", ([], []))
                if steps:
                    ax.plot(steps, values, style, color=f"C{i % 10}", lw=1.2, marker="o" if len(steps) < 30 else None,
                            ms=3, label=stage if len(runs) == 1 else None if named else label)
                    named = True
        values = [v for line in ax.get_lines() for v in line.get_ydata()]
        if "loss" in name and values and min(values) > 0 and max(values) / min(values) > 100:
            ax.set_yscale("log")  # labels 1e-03, not mathtext's 10^-3 (a third of the figure's time went on those)
            ax.yaxis.set_major_formatter(ticker.LogFormatter(labelOnlyBase=True))
            ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set(title=name, xlabel="step")
        ax.grid(alpha=0.3)
        if len(runs) == 1:
            ax.legend(fontsize=8)
    for ax in axes[len(names):]:
        ax.set_axis_off()
    if len(runs) > 1:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper right", fontsize=7, title="job (solid train, dashed val)",
                   title_fontsize=7)
    fig.suptitle(title, fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI if len(runs) == 1 else 100)  # a sweep's legend wants the pixels
    return buf.getvalue()


def scalars(run_dir: Path) -> dict[str, tuple[list[int], list[float]]]:
    """A run's logged scalars: its TensorBoard events, else its metrics.csv."""
    curves, _ = read_scalars(run_dir)
    return curves or csv_scalars(run_dir)


# --------------------------------------------------------------------------------------------------------- a run's

def _said(run_dir: Path) -> str:
    """What the run said on the console (train.log's dlf lines: predictions, health, the test line)."""
    log = run_dir / "train.log"
    if not log.is_file():
        return ""
    out, keep = [], False
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("["):
            keep = "][dlf][" in line
            line = line.split("] - ", 1)[-1] if keep else line
        if keep:
            out.append(line)
    return "\n".join(out)


def _result(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "result.json").read_text())
    except (OSError, ValueError):
        return {}


def _figures(run_dir: Path) -> str:
    """Every PNG the run wrote under its dir (plots/ and the like), embedded."""
    pngs = sorted(p for p in run_dir.rglob("*.png") if not any(part.startswith(".") for part in p.relative_to(run_dir).parts))
    figs = "".join(f"<figure>{img(p.read_bytes(), p.stem)}<figcaption>{_e(p.relative_to(run_dir))}</figcaption>"
                   "</figure>" for p in pngs)
    return f'<div class="figs">{figs}</div>' if figs else ""


def run_report(run_dir: Path, command: str, config_yaml: str, task: str = "") -> Path:
    """<run dir>/report.html from what the run left in its dir and the command and config it ran with."""
    run_dir = Path(run_dir)
    res = _result(run_dir)
    facts = [("status", res.get("status", "unknown")), ("monitor", f"{res.get('monitor')} ({res.get('mode')})"),
             ("best", res.get("best")), ("last", res.get("last")), ("steps", res.get("steps")),
             ("wall time (s)", res.get("wall_s")), ("run dir", str(run_dir))]
    if res.get("error"):
        facts.insert(1, ("error", res["error"]))
    tests = sorted((res.get("test") or {}).items())
    curves = curves_png([("", scalars(run_dir))], f"{task}: logged metrics".lstrip(": "))
    sections = [("Command", f"<pre>{_e(command)}</pre>"),
                ("Result", table(None, facts)),
                ("Test metrics", table(("metric", "value"), tests) if tests else ""),
                ("What the run said", f"<pre>{_e(_said(run_dir))}</pre>" if _said(run_dir) else ""),
                ("Metric curves", img(curves, "metric curves") if curves else '<p class="muted">no metrics logged</p>'),
                ("Figures", _figures(run_dir)),
                ("Resolved config", f"<details open><summary>.hydra/config.yaml, resolved</summary><pre>"
                                    f"{_e(config_yaml)}</pre></details>")]
    return write(run_dir / "report.html", page(f"dlf run: {task} {run_dir.name}".replace("  ", " "), sections))


def command_of(config: DictConfig) -> str:
    overrides = [str(o) for o in OmegaConf.select(config, "hydra.overrides.task", default=[]) or []]
    return " ".join(["python train.py", *overrides])


def resolved_yaml(config: DictConfig) -> str:
    """The job's config without Hydra's node, resolved (as written if a value cannot resolve)."""
    plain = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    try:
        return OmegaConf.to_yaml(plain, resolve=True)
    except Exception:  # noqa: BLE001 - an interpolation that resolves only inside the run: show it as written
        return OmegaConf.to_yaml(plain)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


class Reports(Callback):
    """Hydra callback: <job dir>/report.html at the end of every job, run or sweep (`report: false` turns it off)."""

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        self._result_before = _read(Path(str(config.hydra.runtime.output_dir)) / "result.json")

    def on_job_end(self, config: DictConfig, job_return=None, **kwargs) -> None:
        ranks = [os.environ.get(k, "0") for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")]  # rank 0 writes
        if not config.get("report", True) or any(r != "0" for r in ranks):
            return
        run_dir = Path(str(config.hydra.runtime.output_dir))
        before = getattr(self, "_result_before", None)
        if before is not None and (run_dir / "report.html").is_file() and _read(run_dir / "result.json") == before:
            return  # a job of a continued sweep that finished before: not run again, its report stands
        try:
            run_report(run_dir, command_of(config), resolved_yaml(config), str(config.get("task_name", "")))
        except Exception as e:  # noqa: BLE001 - the run is on disk already; its report must not hide it
            print(f"dlf: report.html not written ({type(e).__name__}: {e})")


# ------------------------------------------------------------------------------------------------------- a sweep's

def sweep_report(out: Path, tables: list[tuple[str, tuple, list]], runs: list[tuple[str, Path, dict]],
                 figure: Path | None, title: str) -> Path:
    """<out>/report.html: the sweep's tables (title, header, rows), sweep.png, every job's curves on shared axes
    (label, run dir, curves) and a link to each job's own report."""
    curves = curves_png([(label, c) for label, _, c in runs if c], "every job's logged metrics, shared axes")
    links = "".join(f'<li><a href="{_e(os.path.relpath(d / "report.html", out))}">{_e(label)}</a></li>'
                    for label, d, _ in runs if (d / "report.html").is_file())
    sections = [(t, table(h, rows)) for t, h, rows in tables if rows]
    sections += [("sweep.png", img(figure.read_bytes(), "sweep.png") if figure and figure.is_file() else ""),
                 ("Curves of every job", img(curves, "curves of every job") if curves else ""),
                 ("Each job's report", f"<ul>{links}</ul>" if links else "")]
    return write(out / "report.html", page(title, sections))
