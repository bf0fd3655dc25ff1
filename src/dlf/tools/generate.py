"""Draw samples from a trained GAN:
    dlf-generate <run dir | checkpoint> [-n 64] [-o out_dir] [--ckpt best|last|PATH]   (or python scripts/generate.py)

Reads the run's saved config (<run dir>/.hydra/config.yaml) to rebuild the model exactly as trained, loads the
checkpoint's weights (torch.load(weights_only=True)), and writes N samples: for images a PNG grid (samples.png), for
2-D points a CSV (samples.csv, columns x1,x2) and a scatter plot (samples.png) beside the real points. For Fashion-MNIST
and the digits it also prints the Fréchet distance of the run's N samples to N test images, with its floor and
ceiling (dlf.metrics.frechet: FD-dlf-fashion-64, FD-dlf-digits-16).
Installed as `dlf-generate`. Bad input (a missing run or checkpoint, a run that is not a GAN, -n 0) is refused before
torch is imported.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


def check_run(where: Path, ckpt: str = "best") -> None:
    """Refuse, from the run's saved config and without torch, a checkpoint that is not there or a run that is surely
    not a GAN (one of dlf's own systems other than the GAN's). load_gan checks the built system in any case."""
    from dlf.errors import require
    from dlf.run.checkpoint import locate_run, saved_config

    if ckpt not in ("best", "last") and not Path(where).is_file():
        require(Path(ckpt).is_file(), f"checkpoint {ckpt} not found: use --ckpt last, --ckpt best or --ckpt <path>")
        where, ckpt = Path(ckpt), "best"
    run_dir, _ = locate_run(where, ckpt)
    target = str((saved_config(run_dir).get("model") or {}).get("_target_", ""))
    require(not target.startswith("dlf.systems.") or target.startswith("dlf.systems.gan."),
            f"the run in {run_dir} trained {target}, not a GAN: pass a model=gan or model=dcgan run")


def load_gan(where: Path, ckpt: str = "best"):
    """(model, datamodule, run dir) of a GAN run: `where` is its run dir (weights from checkpoints/<ckpt>.ckpt, or
    `ckpt` a path) or one of its checkpoint files. dlf.run.checkpoint.load_run rebuilds it."""
    import dlf.run.train  # noqa: F401  (registers the dlf_pid resolver used in saved configs)
    from dlf.errors import require
    from dlf.run.checkpoint import load_run

    source = where
    if ckpt not in ("best", "last") and not Path(where).is_file():  # a run dir and --ckpt <path>
        source = Path(ckpt)
        require(source.is_file(), f"checkpoint {source} not found: use --ckpt last, --ckpt best or --ckpt <path>")
        ckpt = "best"
    loaded = load_run(source, ckpt, data=True)  # the real points are drawn beside the samples
    require(loaded.datamodule is not None and callable(getattr(loaded.system, "generate", None)),
            f"the run in {loaded.run_dir} trained {type(loaded.system).__module__}.{type(loaded.system).__name__}, "
            "not a GAN: pass a model=gan or model=dcgan run")
    return loaded.system, loaded.datamodule, loaded.run_dir


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Write samples from a trained dlf GAN.")
    ap.add_argument("run", type=Path, help="the run dir (logs/gan/runs/<time>_<pid>) or one of its checkpoints")
    ap.add_argument("-n", "--num", type=int, default=64, help="number of samples (default 64)")
    ap.add_argument("-o", "--out", type=Path, default=None, help="output dir (default <run dir>/samples)")
    ap.add_argument("--ckpt", default="best", help="best | last | a checkpoint path")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    from dlf.errors import DlfError

    try:
        if a.num <= 0:
            raise DlfError(f"-n {a.num} must be a positive number of samples")
        check_run(a.run, a.ckpt)  # all of the above without torch
        model, dm, run_dir = load_gan(a.run, a.ckpt)
    except DlfError as e:
        print(f"dlf-generate: error: {e}", file=sys.stderr)
        sys.exit(2)
    out = a.out or run_dir / "samples"
    out.mkdir(parents=True, exist_ok=True)
    import torch

    samples = model.generate(a.num, torch.Generator().manual_seed(a.seed)).cpu()
    from dlf.callbacks.gan import image_grid, save_grid, scatter_figure

    if model.facts.kind == "image":
        nrow = max(1, int(a.num ** 0.5))
        save_grid(image_grid(model.to_pixels(samples), nrow=nrow), out / "samples.png")
        print(f"wrote {out / 'samples.png'} ({a.num} images)")
        line = fd_line(model, dm, a.seed)
        if line:
            print(line)
        return
    flat = samples.flatten(1)
    header = ",".join(f"x{i + 1}" for i in range(flat.shape[1]))
    lines = [header] + [",".join(f"{v:.6g}" for v in row) for row in flat.tolist()]
    (out / "samples.csv").write_text("\n".join(lines) + "\n")
    msg = f"wrote {out / 'samples.csv'}"
    if flat.shape[1] == 2:
        fig = scatter_figure(dm.val[0], flat, model.centres, f"{a.num} samples from {run_dir.name}")
        fig.savefig(out / "samples.png", dpi=110, bbox_inches="tight")
        msg += f" and {out / 'samples.png'}"
        if model.centres is not None:
            print(score_line(model.score(flat, "gen"), a.num))
    print(msg)


def fd_line(model, dm, seed: int) -> str | None:
    """The Fréchet distance in dlf's feature net (dlf.metrics.frechet) of N samples (seeded by --seed) to N test
    images, beside its floor (N training images) and ceiling (N images of uniform noise); N = the run's test N
    (min(model.n_eval, test images)). None for data dlf ships no feature net for."""
    if not model.has_frechet():
        return None
    import torch

    from dlf.metrics.frechet import card

    f = model.frechet(dm, "test")
    fd = f.fd(model.to_pixels(model.generate(f.n, torch.Generator().manual_seed(seed))))
    floor = f.floor(model.to_pixels(dm.train[0][: f.n]))
    return (f"{card(model.facts.name)['name']} (Fréchet distance in dlf's {model.facts.name} classifier features): "
            f"{fd:.4g} for {f.n} samples against {f.n} test images; floor {floor:.4g} ({f.n} training images), "
            f"ceiling {f.ceiling():.4g} ({f.n} images of uniform noise)")


def score_line(stats: dict[str, float], num: int) -> str:
    """`high_quality=..; modes=..; kl=..; score=..` for `num` samples. KL to uniform is taken over the high-quality
    samples only (dlf.metrics.modes): with none of them it is undefined (NaN), which is said in words instead."""
    words = []
    for k, v in stats.items():
        name = k.split("/")[1]
        if name == "kl" and math.isnan(v):
            words.append(f"kl=n/a (too few samples: 0 of {num} are high quality, KL needs at least 1; "
                         "train longer or ask for more with -n)")
        else:
            words.append(f"{name}={v:.3g}")
    return "; ".join(words)


if __name__ == "__main__":
    main()
