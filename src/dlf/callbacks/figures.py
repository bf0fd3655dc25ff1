"""Send a matplotlib figure to every logger that takes images, and save it as a PNG in the run dir."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import matplotlib

if not os.environ.get("MPLBACKEND", "").startswith("module://matplotlib_inline"):
    matplotlib.use("Agg")  # no display needed; but inside Jupyter keep its inline backend, or plt.show() stops drawing
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from dlf.faults import whole_or_absent  # noqa: E402

DPI = 110  # pixels per inch of every figure dlf writes (PNG and TensorBoard alike)


class Figures(L.Callback):
    """A callback whose output is figures (and the diagnostics drawn in them): `figures=false` leaves it out of the run
    (debug=fast sets it: drawing is most of what a few-batch run spends above its imports)."""


def run_dir(trainer: L.Trainer) -> Path:
    return Path(trainer.default_root_dir)


def tensorboard(trainer: L.Trainer):
    """The SummaryWriter of the first TensorBoard logger, or None."""
    from lightning.pytorch.loggers import TensorBoardLogger

    for lg in trainer.loggers:
        if isinstance(lg, TensorBoardLogger):
            return lg.experiment
    return None


def _choice(group: str) -> str | None:
    """The Hydra group choice (model=cnn -> "cnn") of a running job, or None (the compose API, a notebook)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None


def caption(trainer: L.Trainer, step: int | None = None) -> str:
    """What a figure shows, for its title: "model=cnn (CNNSystem)  data=digits  step 19" (the network's class where
    no Hydra job names the model)."""
    module = trainer.lightning_module
    name = type(getattr(module, "net", module)).__name__
    model = _choice("model")
    facts = getattr(trainer.datamodule, "facts", None)
    data = getattr(facts, "name", None) or _choice("data") or type(trainer.datamodule).__name__.replace("NoneType", "?")
    step = trainer.global_step if step is None else step
    return f"model={model} ({name})  data={data}  step {step}" if model else f"{name}  data={data}  step {step}"


def titled(fig, trainer: L.Trainer, step: int | None = None):
    """`fig` with the caption (model, data, step) as its suptitle, above whatever title it has."""
    fig.suptitle(caption(trainer, step), fontsize=9, color="0.25")
    return fig


def render(fig, dpi: int = DPI) -> np.ndarray:
    """The figure as an RGB image [H, W, 3] (uint8), laid out tight (unless it has a layout engine of its own, e.g.
    constrained) and drawn once."""
    fig.set_dpi(dpi)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def publish(trainer: L.Trainer, tag: str, fig, png_name: str | None = None, step: int | None = None,
            to_tensorboard: bool = True) -> Path | None:
    """Log `fig` under `tag` to TensorBoard (if used) and write <run dir>/plots/<png_name>; closes the figure.
    The figure is drawn once and the same pixels go to both (savefig and TensorBoard's add_figure would draw it
    three times: savefig's tight bounding box measures with a draw of its own). A figure without a suptitle gets the
    caption (model, data, step) as one."""
    step = trainer.global_step if step is None else step
    if fig.get_suptitle() == "":
        titled(fig, trainer, step)
    path = None
    tb = tensorboard(trainer) if to_tensorboard else None
    want_png = bool(png_name) and trainer.is_global_zero
    if want_png or tb is not None:
        image = render(fig)
        if want_png:
            path = run_dir(trainer) / "plots" / png_name
            path.parent.mkdir(parents=True, exist_ok=True)
            with whole_or_absent(path):  # a disk that fills mid-write leaves no truncated PNG
                Image.fromarray(image).save(path, format="png", dpi=(DPI, DPI))
        if tb is not None:
            tb.add_image(tag, image, global_step=step, dataformats="HWC")
    plt.close(fig)
    return path
