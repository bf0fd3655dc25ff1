"""sweep.png: every run's training cost on one labelled axis and the monitored metric beside it (dlf-compare and the
sweep summary); runs that differ only in their seed drawn as their setting's mean and a ±std band (dlf.tools.seeds)."""

from __future__ import annotations

import math
from pathlib import Path

from dlf.tools import seeds

COST_TAGS = (("train/loss",), ("train/d_loss", "train/g_loss"))  # the MLP/RNN/LSTM/CNN cost; the GAN's two costs
STYLES = ("-", "--", ":")


def _lines(settings: list[seeds.Setting]) -> list[tuple]:
    """What sweep.png draws: (label, a run, the runs of its line) — a run, or a setting of several seeds as one line."""
    out = []
    for s in settings:
        with_curves = [r for r in s.runs if r.curves]
        if s.n > 1 and len(with_curves) > 1:
            out.append((f"{s.label} (mean ± std, n={len(with_curves)})", with_curves[0], with_curves))
            continue
        for r in with_curves:
            label = f"{r.job} {r.label}" if r.job is not None else r.label
            out.append((label + (f"  [{r.status}]" if r.status not in ("ok", "unknown") else ""), r, [r]))
    return out


def _draw(ax, runs: list, tag: str, style: str, color, label, marker: bool = False) -> list[float]:
    """One run's curve of `tag`, or the mean of several runs' with a ±std band; returns the values drawn."""
    curves = [r.curves[tag] for r in runs if tag in r.curves]
    if not curves:
        return []
    steps, values, std = seeds.mean_curve(curves) if len(curves) > 1 else (*curves[0], None)
    ax.plot(steps, values, style + ("o" if marker and len(steps) < 40 else ""), ms=3, color=color, lw=1.3,
            label=label)
    if std is not None:
        ax.fill_between(steps, [m - d for m, d in zip(values, std)], [m + d for m, d in zip(values, std)],
                        color=color, alpha=0.2, lw=0)
    return list(values)


def plot(settings: list[seeds.Setting], path: Path) -> bool:
    """sweep.png: each run's training cost on one axis (legend: its overrides), the monitored metric beside it; the
    runs of a setting that differ only in seed as their mean and a ±std band."""
    from matplotlib.figure import Figure

    lines = _lines(settings)
    if not lines:
        return False
    with_curves = [r for _, _, rs in lines for r in rs]
    fig = Figure(figsize=(13, 5.2), layout="constrained")
    ax_cost, ax_mon = fig.subplots(1, 2)
    palette = [f"C{i}" for i in range(10)] if len(lines) <= 10 else None
    cost_names: set[str] = set()
    positive = True
    for i, (label, r, runs) in enumerate(lines):
        color = palette[i] if palette else _cmap(i, len(lines))
        label = _short(label)
        tags = next((t for t in COST_TAGS if any(x in r.curves for x in t)), ())
        for tag, style in zip(tags, STYLES):
            values = _draw(ax_cost, runs, tag, style, color, label if tag == tags[0] else None)
            if values:
                cost_names.add(tag)
                positive &= all(v > 0 for v in values if math.isfinite(v))
        if r.monitor and r.monitor in r.curves:
            _draw(ax_mon, runs, r.monitor, "-", color, label, marker=True)
    names = [t for tags in COST_TAGS for t in tags if t in cost_names]
    ax_cost.set_title("training cost: " + ", ".join(f"{n} ({('solid', 'dashed', 'dotted')[k % 3]})" if len(names) > 1
                                                    else n for k, n in enumerate(names)))
    ax_cost.set_xlabel("step")
    ax_cost.set_ylabel("cost" + (" (log scale)" if positive else ""))
    if positive and cost_names:
        ax_cost.set_yscale("log")
    monitors = sorted({r.monitor for r in with_curves if r.monitor})
    modes = sorted({r.mode for r in with_curves if r.mode})
    ax_mon.set_title("monitored: " + (", ".join(monitors) or "none") + (f" ({modes[0]} is best)" if len(modes) == 1 else ""))
    ax_mon.set_xlabel("step")
    ax_mon.set_ylabel(monitors[0] if len(monitors) == 1 else "value")
    mon_values = [v for line in ax_mon.get_lines() for v in line.get_ydata() if math.isfinite(v)]
    if mon_values and min(mon_values) > 0 and max(mon_values) / min(mon_values) > 100:  # orders of magnitude apart
        ax_mon.set_yscale("log")
    for ax in (ax_cost, ax_mon):
        ax.grid(alpha=0.3)
    handles, labels = ax_cost.get_legend_handles_labels()
    if not handles:
        handles, labels = ax_mon.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="run (overrides)", title_fontsize=8)
    fig.savefig(path, dpi=110)
    return True


def _cmap(i: int, n: int):
    from matplotlib import colormaps

    return colormaps["viridis"](i / max(1, n - 1))


def _short(label: str, n: int = 60) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"
