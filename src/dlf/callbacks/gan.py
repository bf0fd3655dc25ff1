"""GAN figures, each validation epoch: real vs generated points (2-D data) or a fixed-noise sample grid (images).

The samples are the ones the GAN system just scored (G of its fixed noise), so the figure shows what the metrics
measured. Figures go to TensorBoard and, every `png_every` epochs and at the end, to <run dir>/plots/ as PNG.
"""

from __future__ import annotations

import torch

from dlf.callbacks.figures import Figures, plt, publish, tensorboard


def scatter_figure(real: torch.Tensor, fake: torch.Tensor, centres: torch.Tensor | None = None, title: str = ""):
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(fake[:, 0], fake[:, 1], s=4, alpha=0.5, c="tab:orange", label="generated")
    ax.scatter(real[:, 0], real[:, 1], s=2, alpha=0.5, c="tab:blue", label="real")
    if centres is not None:
        ax.scatter(centres[:, 0], centres[:, 1], s=40, marker="x", c="k", label="mode centres")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=2)
    ax.set_title(title)
    return fig


def image_grid(images: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    """[3, H', W'] grid of the first nrow^2 images (values clamped to [0, 1])."""
    from torchvision.utils import make_grid

    return make_grid(images[: nrow * nrow].float().clamp(0, 1).cpu(), nrow=nrow, padding=1, pad_value=1.0)


def save_grid(grid: torch.Tensor, path, min_side: int = 400) -> None:
    """Write the grid as PNG, enlarged (nearest neighbour) to at least `min_side` pixels so 8x8 digits are visible."""
    from torchvision.utils import save_image

    scale = max(1, -(-min_side // max(grid.shape[-2:])))
    if scale > 1:
        grid = torch.nn.functional.interpolate(grid[None], scale_factor=scale, mode="nearest")[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    from dlf.faults import whole_or_absent

    with whole_or_absent(path):
        save_image(grid, path)


def grid_figure(grid: torch.Tensor, title: str):
    """The sample grid [3, H, W] as a figure with a title (pixels shown as squares, no axes)."""
    side = min(8.0, max(4.0, grid.shape[-1] / 60))
    fig, ax = plt.subplots(figsize=(side, side * grid.shape[-2] / grid.shape[-1] + 0.5))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return fig


class GANSamples(Figures):
    def __init__(self, png_every: int = 5, nrow: int = 8):
        self.png_every, self.nrow = png_every, nrow

    def _draw(self, trainer, pl_module, final: bool = False) -> None:
        fake = getattr(pl_module, "last_samples", None)
        if fake is None and final:  # the run ended before its first validation: draw G's samples of the fixed z now
            was = pl_module.training
            with torch.no_grad():
                fake = pl_module.eval().G_eval(pl_module.fixed_z)  # what a validation would have drawn
            pl_module.train(was)
        if fake is None or trainer.sanity_checking:
            return
        epoch = trainer.current_epoch
        png = final or (self.png_every > 0 and epoch % self.png_every == 0)
        fake = fake.float().cpu()
        if pl_module.facts.kind == "image":
            grid = image_grid(pl_module.to_pixels(fake), self.nrow)
            tb = tensorboard(trainer)
            if tb is not None:
                tb.add_image("samples/grid", grid, global_step=trainer.global_step)
            if png and trainer.is_global_zero:  # the PNG titled (TensorBoard's step and tag say it there)
                name = "samples_final.png" if final else f"samples_e{epoch:03d}.png"
                publish(trainer, "samples/grid", grid_figure(grid, self._title(trainer, epoch, final)), name,
                        to_tensorboard=False)
        elif fake.shape[1:] == (2,):
            real = trainer.datamodule.val[0].float().cpu()
            fig = scatter_figure(real, fake, pl_module.centres, self._title(trainer, epoch, final))
            name = "samples_final.png" if final else f"samples_e{epoch:03d}.png"
            publish(trainer, "samples/scatter", fig, name if png else None)

    @staticmethod
    def _title(trainer, epoch: int, final: bool) -> str:
        """"epoch 3: 8 modes, 97.5% high quality" (and the Fréchet distance where the run measures it)."""
        m = trainer.callback_metrics
        title = f"after {epoch} epochs" if final else f"epoch {epoch}"
        if "val/modes" in m:
            title += f": {int(m['val/modes'])} modes, {float(m['val/high_quality']):.1f}% high quality"
        if "val/fd" in m:
            title += f", val/fd {float(m['val/fd']):.3g}"
        return title

    def on_validation_end(self, trainer, pl_module):
        self._draw(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        self._draw(trainer, pl_module, final=True)
