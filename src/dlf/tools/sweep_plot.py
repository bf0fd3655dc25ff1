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
    """Write sweep.png (see `figure`); False when no run has a curve to draw."""
    fig = figure(settings)
    if fig is None:
        return False
    fig.savefig(path, dpi=110)
    return True


def palette(n: int) -> list:
    """n colours of a qualitative palette, neighbours far apart: tab10 up to 10 lines, else tab20 (dark and light of
    each hue), cycled past 20 (the line style then tells them apart)."""
    from matplotlib import colormaps

    colors = colormaps["tab10" if n <= 10 else "tab20"].colors
    if n > 10:  # the dark shades first, then the light ones: neighbouring lines never get one hue's two shades
        colors = colors[0::2] + colors[1::2]
    return [colors[i % len(colors)] for i in range(n)]


def figure(settings: list[seeds.Setting]):
    """sweep.png as a matplotlib Figure (None: nothing to draw): each run's training cost on one axis (legend: its
    overrides), the monitored metric beside it; the runs of a setting that differ only in seed as their mean and a
    ±std band. Every line carries its key (the job number, or #i) at its end; the title names model, data and steps."""
    from matplotlib.figure import Figure

    lines = _lines(settings)
    if not lines:
        return None
    with_curves = [r for _, _, rs in lines for r in rs]
    fig = Figure(figsize=(13, 5.2), layout="constrained")
    ax_cost, ax_mon = fig.subplots(1, 2)
    colors = palette(len(lines))
    cost_names: set[str] = set()
    positive = True
    keys: dict[str, str] = {}  # legend label -> the key written at the line's end
    for i, (label, r, runs) in enumerate(lines):
        color = colors[i]
        key = str(r.job) if len(runs) == 1 and r.job is not None else f"#{i}"
        label = _short(label if label.startswith(key + " ") else f"{key} {label}")
        keys[label] = key
        tags = next((t for t in COST_TAGS if any(x in r.curves for x in t)), ())
        for tag, style in zip(tags, STYLES):
            style = style if len(lines) <= 20 or tag != tags[0] else STYLES[(i // 20) % len(STYLES)]
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
        end_labels(ax, keys)
    fig.suptitle(_caption(with_curves), fontsize=10)
    handles, labels = ax_cost.get_legend_handles_labels()
    if not handles:
        handles, labels = ax_mon.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="run (overrides)", title_fontsize=8)
    return fig


def end_labels(ax, keys: dict[str, str], gap: float = 0.045) -> list:
    """Write each labelled line's key just right of the axes at the height of its last point, in its colour, with a
    thin leader to that point; keys whose ends lie closer than `gap` (axes fraction) are spread apart, so lines that
    end together (e.g. stuck runs) are still told apart."""
    ax.autoscale_view()
    to_frac = ax.transData + ax.transAxes.inverted()
    ends = []
    for line in ax.get_lines():
        if line.get_label() in keys and len(line.get_xdata()):
            x, y = float(line.get_xdata()[-1]), float(line.get_ydata()[-1])
            if math.isfinite(y):
                ends.append([to_frac.transform((x, y))[1], x, y, line])
    ends.sort(key=lambda e: e[0])
    for prev, cur in zip(ends, ends[1:]):
        cur[0] = max(cur[0], prev[0] + gap)
    for nxt, cur in zip(ends[::-1], ends[-2::-1]):  # then down from the top edge: only a pile that reached it moves
        nxt[0] = min(nxt[0], 1.0) if nxt is ends[-1] else nxt[0]
        cur[0] = min(cur[0], nxt[0] - gap)
    out = []
    for frac, x, y, line in ends:
        out.append(ax.annotate(keys[line.get_label()], xy=(x, y), xytext=(1.01, frac), textcoords="axes fraction",
                               color=line.get_color(), fontsize=8, fontweight="bold", va="center",
                               annotation_clip=False, arrowprops=dict(arrowstyle="-", color=line.get_color(), lw=0.5,
                                                                      alpha=0.6, shrinkA=0, shrinkB=0)))
    return out


def _caption(runs: list) -> str:
    """The title: the runs' model and data choices (from their .hydra/hydra.yaml) and how many steps they took."""
    parts = []
    for g in ("model", "data"):
        picked = sorted({r.choices[g] for r in runs if g in getattr(r, "choices", {})})
        if picked:
            parts.append(f"{g}={'|'.join(picked)}")
    steps = [max(c[0]) for r in runs for c in r.curves.values() if c[0]]
    return "  ".join([f"{len(runs)} runs"] + parts + ([f"up to step {max(steps)}"] if steps else []))


def _short(label: str, n: int = 60) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"
