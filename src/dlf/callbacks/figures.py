"""Send a matplotlib figure to every logger that takes images, and save it as a PNG in the run dir."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import matplotlib

if not os.environ.get("MPLBACKEND", "").startswith("module://matplotlib_inline"):
    matplotlib.use("Agg")  # no display needed; but inside Jupyter keep its inline backend, or plt.show() stops drawing
import matplotlib.pyplot as plt  # noqa: E402

from dlf.faults import whole_or_absent  # noqa: E402


def run_dir(trainer: L.Trainer) -> Path:
    return Path(trainer.default_root_dir)


def tensorboard(trainer: L.Trainer):
    """The SummaryWriter of the first TensorBoard logger, or None."""
    from lightning.pytorch.loggers import TensorBoardLogger

    for lg in trainer.loggers:
        if isinstance(lg, TensorBoardLogger):
            return lg.experiment
    return None


def publish(trainer: L.Trainer, tag: str, fig, png_name: str | None = None, step: int | None = None) -> Path | None:
    """Log `fig` under `tag` to TensorBoard (if used) and write <run dir>/plots/<png_name>; closes the figure."""
    step = trainer.global_step if step is None else step
    path = None
    if png_name and trainer.is_global_zero:
        path = run_dir(trainer) / "plots" / png_name
        path.parent.mkdir(parents=True, exist_ok=True)
        with whole_or_absent(path):  # a disk that fills mid-write leaves no truncated PNG
            fig.savefig(path, dpi=110, bbox_inches="tight")
    tb = tensorboard(trainer)
    if tb is not None:
        tb.add_figure(tag, fig, global_step=step, close=False)
    plt.close(fig)
    return path
