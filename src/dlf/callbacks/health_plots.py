"""The health callback's figures (<run dir>/plots/health_*.png and TensorBoard images) and its end-of-run line.

history: quantity -> tag -> [(step, value)] (dlf.callbacks.health.Health.history); hists: activations | gradients ->
layer -> (edges, counts, stats) of the latest measurement.
"""

from __future__ import annotations

import statistics

from dlf.callbacks.figures import plt

BANDS = {"saturation": 0.10, "grad_flow": 1e-2, "update_ratio": (-4.0, -2.0)}  # healthy: share <=, min/max >=, in
GUIDE = -3.0  # the update:data ratio's guide line (log10)


def group_of(tag: str, groups: list[str]) -> str:
    head = tag.split(".", 1)[0].split("[", 1)[0]
    return head if head in groups else ""


def _split(series: dict, groups: list[str]) -> dict[str, dict]:
    """{group: {tag: series}}: one row of panels per net when there are several (the GAN's G and D)."""
    out: dict[str, dict] = {g: {} for g in groups} if groups else {"": {}}
    for tag, v in series.items():
        out.setdefault(group_of(tag, groups), {})[tag] = v
    return {g: s for g, s in out.items() if s}


def _lines(ax, series: dict, scale: float = 1.0):
    for tag, pts in series.items():
        ax.plot([p[0] for p in pts], [p[1] * scale for p in pts], lw=1.2, marker="." if len(pts) < 30 else None,
                label=tag)
    ax.set_xlabel("training step")
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(fontsize=6, ncol=1 + len(series) // 8)


def _hist_panel(ax, hists: dict, title: str):
    for layer, (edges, counts, _) in hists.items():
        total = sum(counts) or 1.0
        centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
        ax.plot(centres, [c / total for c in counts], lw=1.2, label=layer)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel("share of values")
    ax.grid(True, alpha=0.3)
    if hists:
        ax.legend(fontsize=6)


def _two_column(history: dict, hists: dict, groups: list[str], what: str):
    rows = _split(history, groups)
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 3.6 * len(rows)), squeeze=False)
    for (g, series), (left, right) in zip(rows.items(), axes):
        prefix = f"{g}: " if g else ""
        if what == "activations":
            _lines(left, series, 100.0)
            left.axhline(100 * BANDS["saturation"], color="k", ls="--", lw=0.8)
            left.set_ylabel("saturated share (%)")
            left.set_title(prefix + "saturated units per layer (tanh |a|>0.97, sigmoid outside [0.03, 0.97], "
                           "ReLU never firing)", fontsize=8)
        else:
            _lines(left, series)
            left.set_yscale("log")
            left.set_ylabel("||dJ/dW||")
            left.set_title(prefix + "gradient norm per layer", fontsize=9)
        last = {k: v for k, v in hists.items() if group_of(k, groups) == g}
        _hist_panel(right, last, prefix + f"{what} at the last measurement")
    return fig


def _updates(history: dict, groups: list[str]):
    rows = _split(history, groups)
    fig, axes = plt.subplots(len(rows), 1, figsize=(8, 3.6 * len(rows)), squeeze=False)
    for (g, series), (ax,) in zip(rows.items(), axes):
        _lines(ax, series)
        lo, hi = BANDS["update_ratio"]
        ax.axhspan(lo, hi, color="tab:green", alpha=0.08)
        ax.axhline(GUIDE, color="k", ls="--", lw=1, label="-3 (guide)")
        ax.set_ylabel("log10 std(update) / std(W)")
        ax.set_title(f"{g + ': ' if g else ''}update:data ratio per parameter tensor", fontsize=9)
    return fig


def _gan(history: dict):
    fig, ax = plt.subplots(figsize=(7, 3.4))
    _lines(ax, {("D(x), real" if k == "d_real" else "D(G(z)), fake"): v for k, v in sorted(history.items())})
    ax.axhline(0.5, color="k", ls="--", lw=0.8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("D's mean output")
    ax.set_title("the discriminator on real and generated samples", fontsize=9)
    return fig


def draw_all(cb, publish) -> None:
    """Every health figure of the run: publish(tag, fig, png_name) sends each to TensorBoard and plots/."""
    h, groups = cb.history, cb.groups
    if h.get("saturation"):
        publish("plots/health_activations", _two_column(h["saturation"], cb.hists["activations"], groups,
                                                        "activations"), "health_activations.png")
    if h.get("grad_norm"):
        publish("plots/health_gradients", _two_column(h["grad_norm"], cb.hists["gradients"], groups, "gradients"),
                "health_gradients.png")
    if h.get("update_ratio"):
        publish("plots/health_updates", _updates(h["update_ratio"], groups), "health_updates.png")
    if h.get("gan"):
        publish("plots/health_gan", _gan(h["gan"]), "health_gan.png")


def medians(series: dict) -> dict[str, float]:
    return {tag: statistics.median(v for _, v in pts) for tag, pts in series.items() if pts}


def _verdicts(history: dict, groups: list[str], g: str) -> list[str]:
    pick = {q: {t: v for t, v in medians(history.get(q, {})).items() if group_of(t, groups) == g}
            for q in ("saturation", "grad_norm", "update_ratio")}
    out = []
    if sat := pick["saturation"]:
        worst = max(sat, key=sat.get)
        bad = sat[worst] > BANDS["saturation"]
        out.append(f"saturation {'TOO HIGH' if bad else 'ok'}: {worst} {100 * sat[worst]:.0f}% "
                   f"(healthy <= {100 * BANDS['saturation']:.0f}%)")
    if (gn := pick["grad_norm"]) and max(gn.values()) > 0:
        weakest, strongest = min(gn, key=gn.get), max(gn, key=gn.get)
        ratio = gn[weakest] / gn[strongest]
        out.append(f"gradient flow {'VANISHING' if ratio < BANDS['grad_flow'] else 'ok'}: {weakest} {ratio:.1e} x "
                   f"{strongest} (healthy >= {BANDS['grad_flow']:.0e})")
    if ur := pick["update_ratio"]:
        lo, hi = BANDS["update_ratio"]
        worst = max(ur, key=lambda t: abs(ur[t] - GUIDE))
        word = "TOO LARGE" if ur[worst] > hi else "TOO SMALL" if ur[worst] < lo else "ok"
        out.append(f"update:data {word}: {worst} {ur[worst]:+.1f} (healthy {lo:g} to {hi:g})")
    return [f"{g}: {v}" if g else v for v in out]


def summary_line(history: dict, groups: list[str]) -> str:
    """One line: for each quantity (and net), the worst layer and whether it is outside its healthy band (medians
    over the run's measurements)."""
    n = max((len(p) for s in history.values() for p in s.values()), default=0)
    parts = [v for g in (groups or [""]) for v in _verdicts(history, groups, g)]
    gan = medians(history.get("gan", {}))
    if gan:
        parts.append(", ".join(f"{label} {gan[k]:.2f}" for k, label in (("d_real", "D(x) on real"),
                                                                          ("d_fake", "D(G(z)) on fake")) if k in gan))
    return f"health ({n} measurements, medians; plots/health_*.png): " + "; ".join(parts)
