"""The course's XOR exercise (2-5-1 sigmoid, W ~ N(0, 1), b = 0, gradient descent on J = 1/2 sum (y - y_hat)^2) with its
bugs fixed, for many seeds at once: how many seeds each learning rate and step budget solves.

    python scripts/xor_course.py [--seeds 20] [--margin 0.25]
    from xor_course import course_table; rows = course_table(seeds=20)   # (what scripts/reproduce.py calls)

"Solved" = all four outputs on the right side of 0.5 by at least `margin` (y_hat < 0.25 for 0, > 0.75 for 1).
(Formerly `scripts/bench_xor.py --course`.)
"""

from __future__ import annotations

import argparse
import statistics

import torch

X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
Y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
# (alpha, steps): the course's setting, a longer run, and larger rates
SETTINGS = [(0.01, 10_000), (0.01, 100_000), (0.1, 10_000), (0.5, 10_000), (1.0, 10_000), (2.0, 10_000)]


def course_gd(seeds: int, alpha: float, steps: int, margin: float = 0.25) -> tuple[int, list[int]]:
    """Batched over seeds (per seed: torch.manual_seed(seed); torch.randn for W1 then W2), float64. Returns the number
    of seeds solved at the end and, for the solved-at-some-point seeds, the first step at which they were."""
    inits = []
    for s in range(seeds):
        torch.manual_seed(s)
        inits.append((torch.randn(2, 5), torch.randn(5, 1)))
    wxh = torch.stack([i[0] for i in inits]).double()          # [S, 2, 5]
    why = torch.stack([i[1] for i in inits]).double()          # [S, 5, 1]
    bh, by = torch.zeros(seeds, 1, 5, dtype=torch.float64), torch.zeros(seeds, 1, 1, dtype=torch.float64)
    x, y = X.double().expand(seeds, 4, 2), Y.double().expand(seeds, 4, 1)
    first = torch.full((seeds,), -1)
    ok = torch.zeros(seeds, dtype=torch.bool)
    for step in range(steps):
        a1 = torch.sigmoid(x @ wxh + bh)                         # a1 = sigma(x W1 + b1)
        y_hat = torch.sigmoid(a1 @ why + by)                     # y_hat = sigma(a1 W2 + b2)
        ok = ((y_hat - y).abs() < 0.5 - margin).all(dim=2).all(dim=1)
        first = torch.where((first < 0) & ok, torch.full_like(first, step), first)
        delta2 = -(y - y_hat) * y_hat * (1 - y_hat)              # dJ/dz2
        delta1 = (delta2 @ why.transpose(1, 2)) * a1 * (1 - a1)  # dJ/dz1
        why = why - alpha * a1.transpose(1, 2) @ delta2          # W2 -= alpha a1^T delta2
        by = by - alpha * delta2.sum(1, keepdim=True)            # b2 -= alpha sum_i delta2_i
        wxh = wxh - alpha * x.transpose(1, 2) @ delta1           # W1 -= alpha x^T delta1
        bh = bh - alpha * delta1.sum(1, keepdim=True)            # b1 -= alpha sum_i delta1_i
    return int(ok.sum()), [int(f) for f in first if f >= 0]


def course_table(seeds: int = 20, margin: float = 0.25, settings=SETTINGS) -> list[dict]:
    """One row per (alpha, steps): {"alpha", "steps", "seeds", "solved", "median_first_step"} (NaN if none solved)."""
    rows = []
    for alpha, steps in settings:
        ok, first = course_gd(seeds, alpha, steps, margin)
        rows.append({"alpha": alpha, "steps": steps, "seeds": seeds, "solved": ok,
                     "median_first_step": statistics.median(first) if first else float("nan")})
    return rows


def format_row(r: dict) -> str:
    return (f"GD alpha={r['alpha']:<5} J=1/2 sum, {r['steps']:>7,} steps: solved {r['solved']:2d}/{r['seeds']} seeds, "
            f"median first step solved {r['median_first_step']}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--margin", type=float, default=0.25)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    for r in course_table(a.seeds, a.margin):
        print(format_row(r), flush=True)


if __name__ == "__main__":
    main()
