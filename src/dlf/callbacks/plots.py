"""End-of-run figures for small models: the cost curve and, for 2-D inputs, the decision boundary."""

from __future__ import annotations

import math

import numpy as np
import torch

from dlf.callbacks.figures import Figures, plt, publish, tensorboard
from dlf.console import say


def decades(values: list[float]) -> tuple[float, float]:
    """The whole powers of ten around the values (0.031..2.3 -> 0.01..10), so two runs' curves share an axis."""
    lo, hi = min(values), max(values)
    return 10.0 ** math.floor(math.log10(lo)), 10.0 ** math.ceil(math.log10(hi) + 1e-12)


def cost_figure(steps: list[int], costs: list[float]):
    """J against the step on an axis runs can be compared on: a positive cost on a log axis from whole decade to whole
    decade, else a linear one from 0 (or the lowest value); the steps from 0."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, costs, lw=1)
    ax.set_xlabel("training step")
    finite = [c for c in costs if math.isfinite(c)]
    if finite and min(finite) > 0:
        ax.set_yscale("log")
        ax.set_ylim(*decades(finite))
        ax.set_ylabel("cost J (log scale, whole decades)")
    else:
        ax.set_ylabel("cost J")
        if finite:
            ax.set_ylim(bottom=min(0.0, min(finite)))
    ax.set_xlim(0, max(max(steps), 1))
    ax.set_title("Cost function")
    ax.grid(True, alpha=0.3)
    return fig


class CostCurve(Figures):
    """Records the training cost at every step and draws J against the step at the end of fit."""

    def __init__(self):
        self.steps: list[int] = []
        self.costs: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.steps.append(trainer.global_step)
            self.costs.append(float(loss))

    def state_dict(self):
        return {"steps": self.steps, "costs": self.costs}

    def load_state_dict(self, state):
        self.steps, self.costs = list(state["steps"]), list(state["costs"])

    def on_train_end(self, trainer, pl_module):
        if not self.costs:
            return
        fig = cost_figure(self.steps, self.costs)
        publish(trainer, "plots/cost_curve", fig, "cost_curve.png")


@torch.no_grad()
def boundary_figure(prob, x: torch.Tensor, y: torch.Tensor, title: str, resolution: int = 200):
    """P(class 1) over the plane around the points x [N, 2] (labels y [N]), its 0.5 contour and the points: `prob`
    maps a grid of points [M, 2] (x's device and dtype) to P(y = 1) [M]."""
    lo, hi = x.min(0).values.cpu() - 0.5, x.max(0).values.cpu() + 0.5
    g0, g1 = torch.meshgrid(torch.linspace(lo[0], hi[0], resolution),
                            torch.linspace(lo[1], hi[1], resolution), indexing="xy")
    grid = torch.stack([g0.reshape(-1), g1.reshape(-1)], 1).to(x.device, x.dtype)
    p = prob(grid).reshape(g0.shape).float().cpu().numpy()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    cs = ax.contourf(g0.numpy(), g1.numpy(), p, levels=np.linspace(0, 1, 21), cmap="RdBu_r", alpha=0.8)
    ax.contour(g0.numpy(), g1.numpy(), p, levels=[0.5], colors="k", linewidths=1.5)
    xc, yc = x.cpu().numpy(), y.cpu().numpy()
    ax.scatter(xc[:, 0], xc[:, 1], c=yc, cmap="RdBu_r", edgecolors="k", s=60 if len(xc) <= 16 else 12, vmin=0, vmax=1)
    fig.colorbar(cs, ax=ax, label="P(y = 1)")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(title)
    return fig


class DecisionBoundary(Figures):
    """For 2-D inputs: P(class 1) over the plane with the training points, at the end of fit. For tiny training sets
    (XOR) it also prints each point's prediction and logs them as text and scalars."""

    def __init__(self, resolution: int = 200, print_points_up_to: int = 16):
        self.resolution = resolution
        self.print_points_up_to = print_points_up_to

    @torch.no_grad()
    def on_train_end(self, trainer, pl_module):
        dm = trainer.datamodule
        facts = getattr(dm, "facts", None)
        if facts is None or facts.input_shape != (2,) or facts.target != "binary":
            return
        dtype = next(pl_module.parameters()).dtype
        x, y = dm.train[0].to(pl_module.device, dtype), dm.train[1]
        was_training = pl_module.training
        pl_module.eval()
        fig = boundary_figure(lambda grid: pl_module(grid)[:, 0], x, y[:, 0], f"Decision boundary ({facts.name})",
                              self.resolution)
        xc, yc = x.cpu().numpy(), y[:, 0].cpu().numpy()
        publish(trainer, "plots/decision_boundary", fig, "decision_boundary.png")

        if len(x) <= self.print_points_up_to:
            y_hat = pl_module(x)[:, 0].float().cpu()
            lines = ["  x1   x2  |  y  |  y_hat"]
            for (a, b), t, q in zip(xc, yc, y_hat.tolist()):
                lines.append(f"  {a:.0f}    {b:.0f}   |  {t:.0f}  |  {q:.4f}")
            table = "\n".join(lines)
            say(f"Predictions on the {len(x)} training points:\n{table}")
            tb = tensorboard(trainer)
            if tb is not None:
                tb.add_text("predictions", "    " + table.replace("\n", "\n    "), trainer.global_step)
                for (a, b), q in zip(xc, y_hat.tolist()):
                    tb.add_scalar(f"predictions/x=({a:.0f},{b:.0f})", q, trainer.global_step)
        pl_module.train(was_training)
