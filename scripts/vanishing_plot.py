"""The vanishing gradient in one picture: the adding problem's test MSE against the length T, tanh RNN and LSTM.

    python scripts/vanishing_plot.py            # reads docs/results.md, writes docs/figures/adding_mse_vs_T.png

Each point is the mean over seeds of a docs/results.md row (`adding_rnn_T*`, `adding_lstm_T*`, written by
scripts/reproduce.py), the bar its standard deviation. The always-1 baseline (1/6) is what a net that ignores the
markers scores; the target is 0.01. The tanh RNN stays at the baseline at every length: the gradient that would tell it
which steps were marked has vanished before it reaches them. The LSTM's cell state carries it.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = re.compile(r"adding_(rnn|lstm)_T(\d+)$")
NAMES = {"rnn": "tanh RNN", "lstm": "LSTM"}


def points(results: Path) -> dict[str, list[tuple[int, float, float, int]]]:
    """{net: [(T, mean, std, seeds), ...]} from results.md's reproduce-data, sorted by T."""
    rows = json.loads(re.search(r"<!-- reproduce-data\n(.*?)\n-->", results.read_text(), re.S).group(1))
    out: dict[str, list] = {"rnn": [], "lstm": []}
    for r in rows:
        m = KEY.match(r["key"])
        vals = r.get("values", {}).get("test/mse", [])
        if m and vals:
            mean = sum(vals) / len(vals)
            std = (sum((v - mean) ** 2 for v in vals) / max(len(vals) - 1, 1)) ** 0.5
            out[m[1]].append((int(m[2]), mean, std, len(vals)))
    return {k: sorted(v) for k, v in out.items()}


def figure(pts: dict):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    for net, colour in (("rnn", "tab:red"), ("lstm", "tab:blue")):
        if pts[net]:
            t, mean, std, n = zip(*pts[net])
            seeds = f"{min(n)}" if min(n) == max(n) else f"{min(n)}-{max(n)}"
            ax.errorbar(t, mean, yerr=std, marker="o", capsize=3, color=colour,
                        label=f"{NAMES[net]} (mean ± std over {seeds} seeds)")
    ax.axhline(1 / 6, ls="--", color="grey", label="always 1 (baseline) 0.167")
    ax.axhline(0.01, ls=":", color="black", label="target 0.01")
    ax.set(xscale="log", yscale="log", xlabel="sequence length T (the first marker is ≥ T/2 steps back)",
           ylabel="test MSE", title="The adding problem: test MSE against T (docs/results.md)")
    ticks = sorted({t for v in pts.values() for t, *_ in v})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.legend(fontsize=8, loc="center right")
    return fig


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=ROOT / "docs" / "results.md")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "adding_mse_vs_T.png")
    a = ap.parse_args(argv)
    pts = points(a.results)
    figure(pts).savefig(a.out, dpi=110)
    for net, v in pts.items():
        print(f"{NAMES[net]:8s} " + "  ".join(f"T={t}: {m:.3g}" for t, m, *_ in v))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
