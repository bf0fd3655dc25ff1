"""Figures that explain themselves (issue 33, deliverable 3): each figure names model, data and step; CNN feature maps
sit beside their input with numbered channels and a colour bar; kernels share one symmetric diverging scale; confusion
matrices are big enough for TensorBoard's Time Series; cost curves sit on whole-decade axes; sweep.png uses a
qualitative palette and labels each line at its end. The Figure objects are inspected, and a CNN run through the
front door is read back from its PNGs and its event file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlf.callbacks import figures
from dlf.callbacks.cnn import confusion_figure, feature_map_figure, kernel_figure
from dlf.callbacks.plots import cost_figure
from dlf.tools import seeds, sweep_plot
from dlf.tools.compare import Run


def _colorbars(fig) -> list:
    return [im.colorbar for ax in fig.axes for im in ax.images if im.colorbar is not None]


@pytest.mark.parametrize("x,maps", [
    (torch.rand(3, 1, 8, 8), torch.rand(3, 6, 8, 8)),      # 2-D: digits-like inputs, 6 maps each
    (torch.rand(2, 1, 40), torch.rand(2, 5, 20)),           # 1-D: a signal, 5 channels x 20 positions
])
def test_feature_maps_beside_their_input_numbered_on_one_colour_scale(x, maps):
    fig = feature_map_figure(x, maps, block=1, labels=[3, 7, 1][: len(x)])
    grid = np.array(fig.axes[: 2 * len(x)]).reshape(len(x), 2)
    for i, (ax_in, ax_maps) in enumerate(grid):
        assert ax_in.get_title().startswith(f"input #{i}")          # the input it came from, left of its maps
        assert ax_in.images or ax_in.lines
        assert f"input #{i}" in ax_maps.get_title() and "block 1" in ax_maps.get_title()
        if maps.dim() == 4:                                          # each tile carries its channel index
            assert {t.get_text() for t in ax_maps.texts} == {str(c) for c in range(maps.shape[1])}
        else:                                                        # rows are channels: labelled axis
            assert ax_maps.get_ylabel() == "channel"
    bars = _colorbars(fig)
    assert len(bars) == 1 and bars[0].ax.get_ylabel() == "activation"
    lims = {im.get_clim() for ax in grid[:, 1] for im in ax.images}
    assert lims == {(float(maps.min()), float(maps.max()))}            # one scale for every map: the bar reads them all
    figures.plt.close(fig)


@pytest.mark.parametrize("shape", [(8, 1, 3, 3), (6, 3, 5, 5), (4, 2, 7)])
def test_kernels_on_a_diverging_map_with_one_symmetric_scale(shape):
    w = torch.randn(shape) * 0.2 + 0.05                               # not symmetric itself
    fig = kernel_figure(w)
    (ax,) = [a for a in fig.axes if a.images and a.images[0].colorbar is not None]
    im = ax.images[0]
    vmin, vmax = im.get_clim()
    assert vmin == -vmax == pytest.approx(-float(w.abs().max()))
    assert im.get_cmap().name == "RdBu_r"
    assert {t.get_text() for t in ax.texts} == {str(f) for f in range(shape[0])}  # filter indices
    assert "kernels" in ax.get_title() and _colorbars(fig)
    figures.plt.close(fig)


def test_confusion_matrix_is_readable_when_shrunk():
    cm = torch.randint(0, 30, (10, 10))
    fig = confusion_figure(cm, "Test confusion matrix")
    image = figures.render(fig)
    assert image.shape[0] >= 700 and image.shape[1] >= 700, image.shape
    cells = [t for t in fig.axes[0].texts]
    assert cells and min(t.get_fontsize() for t in cells) >= 10
    assert _colorbars(fig)
    figures.plt.close(fig)


def test_cost_curves_of_two_runs_share_an_axis():
    a = cost_figure([0, 1, 2, 3], [0.7, 0.3, 0.05, 0.02])
    b = cost_figure([0, 5, 10], [0.45, 0.2, 0.013])
    ya, yb = a.axes[0].get_ylim(), b.axes[0].get_ylim()
    assert ya == yb == (0.01, 1.0)                                    # whole decades: both from 1e-2 to 1e0
    assert a.axes[0].get_yscale() == "log" and a.axes[0].get_xlim()[0] == 0
    signed = cost_figure([0, 1], [0.5, -0.2])                         # a cost that goes negative: linear, not log
    assert signed.axes[0].get_yscale() == "linear"
    for f in (a, b, signed):
        figures.plt.close(f)


def _sweep(n: int, stuck: int) -> list[seeds.Setting]:
    """n jobs: `stuck` of them end on the same cost (they overlap), the rest fall at different rates."""
    out = []
    for j in range(n):
        steps = list(range(0, 101, 10))
        rate = 0.0 if j < stuck else 0.02 * (j - stuck + 1)
        cost = [0.25 * math.exp(-rate * s) + (1e-4 * j if j < stuck else 0) for s in steps]
        run = Run(dir=Path(f"/nowhere/{j}_optimizer.lr={j}"), job=j, label=f"optimizer.lr={j}", status="ok",
                  monitor="val/loss", mode="min", curves={"train/loss": (steps, cost), "val/loss": (steps, cost)},
                  choices={"model": "mlp_xor", "data": "xor"})
        out.append(seeds.Setting(key=(j,), label=run.label, runs=[run]))
    return out


@pytest.mark.parametrize("n", [6, 14])
def test_sweep_png_lines_have_distinct_qualitative_colours_and_end_labels(n):
    from matplotlib import colormaps

    fig = sweep_plot.figure(_sweep(n, stuck=4))
    ax_cost = fig.axes[0]
    lines = [ln for ln in ax_cost.get_lines() if not ln.get_label().startswith("_")]
    colours = [tuple(np.round(ln.get_color(), 4)) for ln in lines]
    assert len(set(colours)) == n                                     # every job its own colour
    qualitative = {tuple(np.round(c, 4)) for c in colormaps["tab10" if n <= 10 else "tab20"].colors}
    assert set(colours) <= qualitative
    keys = {a.get_text(): a for a in ax_cost.texts}
    assert set(keys) == {str(j) for j in range(n)}                    # each line's job number, at its end
    for ln in lines:
        note = keys[ln.get_label().split()[0]]
        assert note.xy == (ln.get_xdata()[-1], ln.get_ydata()[-1])   # the leader points at the line's last point
        assert note.get_color() == ln.get_color()
    stuck = sorted(keys[str(j)].xyann[1] for j in range(4))           # four runs that end together: labels apart
    assert min(b - a for a, b in zip(stuck, stuck[1:])) >= 0.04
    title = fig.get_suptitle()
    assert "model=mlp_xor" in title and "data=xor" in title and "step 100" in title


def test_every_published_figure_names_model_data_and_step(tmp_path, make_cfg, monkeypatch):
    """A CNN run (and its health figures): every figure sent to TensorBoard and plots/ has the caption as suptitle."""
    from dlf.run.train import run

    seen = []
    real = figures.render
    monkeypatch.setattr(figures, "render", lambda fig, *a, **k: (seen.append(fig.get_suptitle()), real(fig, *a, **k))[1])
    cfg = make_cfg(["model=cnn", "callbacks.health.every_n_steps=1"], tmp_path)
    run(cfg)
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert {"feature_maps_block0.png", "kernels_block0.png", "confusion_test.png", "cost_curve.png",
            "health_gradients.png"} <= set(pngs)
    assert len(seen) >= len(pngs)
    for title in seen:
        assert "CNN" in title and "data=digits" in title and "step 3" in title, title


def test_cnn_figures_through_the_front_door(tmp_path, run_cli):
    """`python train.py model=cnn ...`: the PNGs and the event file's images are the new figures (a feature-map
    figure as wide as input + maps, a confusion matrix of >= 700 px a side)."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    out = tmp_path / "run"
    r = run_cli(["model=cnn", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                 f"hydra.run.dir={out}"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    plots = out / "plots"
    w, h = Image.open(plots / "confusion_test.png").size
    assert w >= 700 and h >= 700
    w, h = Image.open(plots / "feature_maps_block0.png").size
    assert w >= 600 and h >= 4 * 250                                   # 4 inputs, a row each
    events = next(p.parent for p in out.rglob("events.out.tfevents.*"))
    acc = ea.EventAccumulator(str(events), size_guidance={ea.IMAGES: 0})
    acc.Reload()
    tags = set(acc.Tags()["images"])
    assert {"cnn/feature_maps/block0", "cnn/kernels/block0", "cnn/confusion/test"} <= tags
    conf = acc.Images("cnn/confusion/test")[-1]
    assert conf.width >= 700 and conf.height >= 700


def test_gan_sample_grid_png_is_titled(tmp_path, make_cfg, monkeypatch):
    """The DCGAN's sample grids in plots/ carry the caption (model, data, step) and the epoch's scores as titles;
    TensorBoard keeps the raw grid (samples/grid), whose tag and step say the same."""
    from dlf.run.train import run

    seen = []
    real = figures.render
    monkeypatch.setattr(figures, "render", lambda fig, *a, **k: (
        seen.append((fig.get_suptitle(), [ax.get_title() for ax in fig.axes])), real(fig, *a, **k))[1])
    cfg = make_cfg(["model=dcgan", "callbacks.gan_samples.png_every=1"], tmp_path)
    run(cfg)
    assert (tmp_path / "plots" / "samples_final.png").is_file()
    grids = [(sup, titles) for sup, titles in seen if any(t.startswith(("epoch", "after")) for t in titles)]
    assert grids, seen
    for sup, _ in grids:
        assert "data=digits" in sup and "step" in sup, sup
    assert any("modes" in t and "val/fd" in t for _, titles in grids for t in titles), grids
