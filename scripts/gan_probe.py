"""A quick plain-PyTorch probe of one GAN set-up on the ring or the grid: dlf's nets and losses without Lightning, so a
set-up can be tried in a few minutes before it becomes a config. Prints the mode metrics of 2,500 fixed-noise samples
every --every steps, and where the samples that miss sit: within 3 sigma (high quality), in a halo (3 sigma .. 1/4 of
the distance between neighbouring centres) or between the modes (farther).

    PYTHONPATH=src python scripts/gan_probe.py --data grid --pack 4 --scale 4 --lr 1e-3 --d-hidden 512,256,128 \
        --steps 10000 --every 2500 --ema 0.999

Same recipe as model=gan: Adam (beta1 --b1), both rates decaying linearly to zero over --steps, one D step and one G
step per batch, non-saturating G loss (--loss minimax for the course's), z ~ N(0, I). --ema d also scores an
exponential moving average of G's weights (torch.optim.swa_utils.AveragedModel), theta_ema <- d theta_ema + (1-d) theta.
"""

from __future__ import annotations

import argparse
import time

import torch


def where(samples: torch.Tensor, centres: torch.Tensor, std: float) -> str:
    """'hq a% halo b% between c%': distance to the nearest centre <= 3 std, <= a quarter of the spacing, farther."""
    d = torch.cdist(samples, centres).min(1).values
    spacing = torch.cdist(centres, centres).masked_fill(torch.eye(len(centres), dtype=torch.bool), 1e9).min()
    hq, halo = (d <= 3 * std).float().mean(), ((d > 3 * std) & (d <= spacing / 4)).float().mean()
    return (f"hq {100 * hq:.1f}% halo {100 * halo:.1f}% between {100 * (1 - hq - halo):.1f}%, "
            f"distance median {d.median():.3f} p80 {d.quantile(0.8):.3f}")


def main(argv=None) -> None:
    from dlf.data.mixtures import grid_centres, ring_centres, sample_mixture
    from dlf.metrics.modes import mode_stats
    from dlf.nets.gan import build_gan_nets
    from dlf.nets.gan_loss import discriminator_loss, generator_loss

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=("grid", "ring"), default="grid")
    ap.add_argument("--pack", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0, help="model.data_scale (grid: 4 is what auto picks)")
    ap.add_argument("--d-scale", type=float, default=None, help="D's input scale when it differs from --scale")
    ap.add_argument("--spectral-norm", action="store_true")
    ap.add_argument("--latent", type=int, default=2)
    ap.add_argument("--hidden", default="128,128,128")
    ap.add_argument("--d-hidden", default="", help="D's layer sizes (default: --hidden)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--b1", type=float, default=0.5)
    ap.add_argument("--b2", type=float, default=0.999)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--every", type=int, default=2500)
    ap.add_argument("--stop", type=int, default=None, help="stop after this many steps (the schedule still spans --steps)")
    ap.add_argument("--decay", choices=("linear", "none"), default="linear")
    ap.add_argument("--hold", type=float, default=0.0, help="linear decay: hold the rate for this fraction of --steps first")
    ap.add_argument("--ema", type=float, default=0.0, help="also score an EMA of G's weights with this decay")
    ap.add_argument("--loss", choices=("non_saturating", "minimax"), default="non_saturating")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    centres, std = (grid_centres(), 0.05) if a.data == "grid" else (ring_centres(), 0.01)
    sizes = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    G, D = build_gan_nets("mlp", a.latent, (2,), hidden=sizes(a.hidden), pack=a.pack, scale=a.scale,
                          spectral_norm=a.spectral_norm, d_hidden=sizes(a.d_hidden) if a.d_hidden else None)
    if a.d_scale is not None:
        D.scale = a.d_scale
    ema = None
    if a.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(a.ema))
    opts = [torch.optim.Adam(n.parameters(), a.lr, betas=(a.b1, a.b2)) for n in (D, G)]
    end = 0.0 if a.decay == "linear" else 1.0
    held = int(a.hold * a.steps)
    decay = lambda s: 1.0 if s < held else 1.0 - (1.0 - end) * (s - held) / max(1, a.steps - held)  # noqa: E731
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, decay) for o in opts]
    gen = torch.Generator().manual_seed(a.seed)
    z_fixed = torch.randn(2500, a.latent, generator=torch.Generator().manual_seed(1234))
    pack = lambda x: x.reshape(len(x) // a.pack, -1)  # noqa: E731   m samples side by side
    t0, c0 = time.time(), time.process_time()
    for step in range(1, (a.stop or a.steps) + 1):
        x = sample_mixture(centres, std, a.batch, gen)
        with torch.no_grad():
            fake = G(torch.randn(a.batch, a.latent, generator=gen))
        d_loss = discriminator_loss(D(pack(x)), D(pack(fake)))
        opts[0].zero_grad()
        d_loss.backward()
        opts[0].step()
        g_loss = generator_loss(D(pack(G(torch.randn(a.batch, a.latent, generator=gen)))), a.loss)
        opts[1].zero_grad()
        g_loss.backward()
        opts[1].step()
        for s in scheds:
            s.step()
        if ema is not None:
            ema.update_parameters(G)
        if step % a.every == 0 or step == a.steps:
            for name, net in (("G", G), ("EMA", ema)):
                if net is None:
                    continue
                with torch.no_grad():
                    samples = net(z_fixed)
                st = mode_stats(samples, centres, std)
                print(f"step {step} {name}: modes {st.modes}/{len(centres)}, high quality {100 * st.high_quality:.1f}%, "
                      f"KL {st.kl:.3f}; {where(samples, centres, std)}; {time.time() - t0:.0f} s wall, "
                      f"{time.process_time() - c0:.0f} s CPU", flush=True)


if __name__ == "__main__":
    main()
