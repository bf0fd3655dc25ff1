"""Each shipped zoo entry's sample figure for docs/zoo.md (docs/figures/zoo_NAME.png), drawn from its shipped weights
and the data dlf reads offline (generated or bundled; nothing is downloaded), with fixed seeds: a classifier's test
inputs with their predicted and true classes, XOR's decision surface, the adding regressor's predicted against true
sums, the language model's sampled text and next-character distribution, a GAN's samples over its data. The PNG
records the sha256 of the weights it was drawn from (text chunk `dlf-zoo-sha256`), so scripts/zoo_docs.py --check
knows a figure that is missing or older than its weights. Drawn with dlf's own figure code (dlf.callbacks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dlf.callbacks.figures import plt, render
from dlf.callbacks.gan import grid_figure, image_grid, scatter_figure
from dlf.callbacks.plots import boundary_figure
from dlf.errors import DlfError

SEED = 0      # every random draw of a figure (which test examples, the GAN's noise, the text's sampling)
SHA_KEY = "dlf-zoo-sha256"


def png_name(name: str) -> str:
    return f"zoo_{name}.png"


def drawn_from(path: Path) -> str | None:
    """The sha256 of the weights a figure was drawn from (its PNG text chunk), or None (no such file, or not ours)."""
    from PIL import Image

    if not Path(path).is_file():
        return None
    with Image.open(path) as im:
        return im.text.get(SHA_KEY) if hasattr(im, "text") else None


def write(name: str, folder: Path, data_dir: str | Path = "data") -> Path:
    """Draw the shipped entry's figure and save it as <folder>/zoo_NAME.png (palette PNG, the weights' sha256 in it)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from dlf import zoo

    card = zoo.card(name)
    fig = figure(name, zoo.get_model(name), Path(data_dir))
    image = Image.fromarray(render(fig))
    plt.close(fig)
    info = PngInfo()
    info.add_text(SHA_KEY, card["sha256"])
    path = Path(folder) / png_name(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, format="png", optimize=True, pnginfo=info)
    return path


def figure(name: str, model, data_dir: Path):
    """The entry's figure (a matplotlib Figure, its suptitle "NAME: what is shown") for `model`, which may be the
    shipped one or any model of the entry's architecture."""
    from dlf import zoo

    kind = zoo.entry(name).kind
    if name == "mlp_xor":
        fig, what = xor_figure(model), "P(y = 1) over the plane, the four XOR points"
    elif kind == "classifier":
        fig, what = classes_figure(name, model, data_dir), "test inputs, predicted vs true class"
    elif kind == "regressor":
        fig, what = adding_figure(name, model), "predicted vs true sums of test sequences"
    elif kind == "language":
        fig, what = text_figure(model), "a sampled text and P(next character)"
    elif model.facts.kind == "image":
        fig, what = grid_figure(image_grid(model.sample(64, seed=SEED)), "64 samples of G (seed 0)"), \
            "generated images"
    else:
        fig, what = points_figure(model), "generated points over the data"
    fig.suptitle(f"{name}: {what}", fontsize=10)
    return fig


def xor_figure(model):
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return boundary_figure(lambda grid: torch.as_tensor(model.predict_proba(grid)).reshape(-1), x,
                           torch.tensor([0.0, 1.0, 1.0, 0.0]), "MLP 2-5-1: decision surface", resolution=100)


def raw_test(name: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The entry's test inputs in the data's own units (the dataset's order), their labels and the class names."""
    from dlf import zoo

    config = zoo.card(name).get("data_config") or {}
    if name == "cnn_digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target, [str(k) for k in range(10)]
    if name.endswith("mnist1d"):
        from dlf.data.mnist1d import load_or_make

        d = load_or_make(data_dir, config.get("num_samples", 5000), config.get("data_seed", 42))
        return np.asarray(d["x_test"]), np.asarray(d["y_test"]), [str(k) for k in range(10)]
    if name == "cnn_fashion":
        from torchvision.datasets import FashionMNIST

        from dlf.data.vision import load_torchvision

        _, _, x, y = load_torchvision("fashion_mnist", data_dir, False, config.get("system_dir", "/usr/share/datasets"))
        return x, y, list(FashionMNIST.classes)
    raise DlfError(f"dlf.zoo.figures: no test inputs known for {name}")


def classes_figure(name: str, model, data_dir: Path, n: int = 12):
    """n test examples (a seeded choice from the test split): images, or signals as lines; predicted vs true class."""
    from dlf import zoo

    x, y, classes = raw_test(name, data_dir)
    split = zoo.test_split(name)
    pick = np.sort(np.random.default_rng(SEED).choice(split, n, replace=False))
    pred = np.asarray(model.predict(x[pick]))
    images = x.ndim == 3
    fig, axes = plt.subplots(3, n // 3, figsize=(7.5, 5.2 if images else 4.6), sharex=not images, sharey=not images)
    for ax, i, p in zip(axes.flat, pick, pred):
        ok = int(p) == int(y[i])
        if images:
            ax.imshow(x[i], cmap="gray_r", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.plot(x[i], lw=1, c="0.2")
        ax.set_title(f"pred {classes[int(p)]} / true {classes[int(y[i])]}", fontsize=7.5,
                     color="tab:green" if ok else "tab:red")
    if not images:
        for ax in axes[-1]:
            ax.set_xlabel("t (sample)", fontsize=8)
        for ax in axes[:, 0]:
            ax.set_ylabel("signal", fontsize=8)
    right = int((pred == y[pick]).sum())
    fig.text(0.5, 0.005, f"{right}/{n} right here (green); card's test accuracy {zoo.card(name)['test']['test/acc']:.3f}"
             if zoo.shipped(name) else f"{right}/{n} right here (green)", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    return fig


def adding_figure(name: str, model, n: int = 300):
    """Predicted against true sums of the first n test sequences (the data module of the card's run, generated)."""
    from hydra.utils import instantiate

    from dlf import zoo

    config = dict(zoo.card(name).get("data_config") or {"_target_": "dlf.data.adding.AddingDataModule"})
    dm = instantiate(config)
    dm.prepare()
    x, y = dm.test[0][:n], dm.test[1][:n].reshape(-1)
    pred = torch.as_tensor(model.predict(x)).reshape(-1)
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.scatter(y, pred, s=6, alpha=0.6, label=f"{n} test sequences (T = {x.shape[1]})")
    ax.plot([0, 2], [0, 2], "k--", lw=1, label="predicted = true")
    ax.set_xlabel("true sum")
    ax.set_ylabel("predicted sum")
    ax.set_title(f"MSE {torch.mean((pred - y) ** 2).item():.2e} (always 1: {torch.mean((y - 1) ** 2).item():.3f})",
                 fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_aspect("equal")
    return fig


def text_figure(model, prompt: str = "The ", top: int = 12):
    """A sampled continuation of `prompt` (temperature 0.5, seed 0) as a text block, and P(next character) after it."""
    import textwrap

    sample = model.sample(prompt, length=240, temperature=0.5, seed=SEED)
    probs = model.predict(prompt)
    chars, ps = list(probs)[:top], list(probs.values())[:top]
    fig, (ax_text, ax_bar) = plt.subplots(2, 1, figsize=(7.5, 4.2), gridspec_kw={"height_ratios": [0.8, 1]})
    ax_text.text(0.0, 1.0, "\n".join(textwrap.wrap(sample, 70)), family="monospace", fontsize=8.5, va="top",
                 transform=ax_text.transAxes)
    ax_text.set_axis_off()
    ax_text.set_title(f"sampled after the prompt {prompt!r} (temperature 0.5, seed {SEED})", fontsize=9)
    ax_bar.bar(range(len(chars)), ps, color="tab:blue")
    ax_bar.set_xticks(range(len(chars)), [repr(c) for c in chars], fontsize=8)
    ax_bar.set_xlabel(f"next character after {prompt!r} (the {top} most likely)")
    ax_bar.set_ylabel("P(next character)")
    return fig


def points_figure(model, n: int = 2500):
    """n samples of G (seed 0) over n fresh points of the data's mixture (its centres and std, from the facts)."""
    from dlf.data.mixtures import sample_mixture

    centres = torch.tensor(model.facts.extra["centres"], dtype=torch.float32)
    real = sample_mixture(centres, model.facts.extra["std"], n, torch.Generator().manual_seed(SEED))
    fake = model.sample(n, seed=SEED)
    fig = scatter_figure(real, fake, centres, f"{n} samples of G (seed {SEED}), {n} real points")
    ax = fig.axes[0]
    ax.title.set_fontsize(9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, markerscale=2)  # beside: no mode hidden
    fig.set_size_inches(6.0, 4.5)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    return fig
