"""A quick plain-PyTorch probe of one GAN set-up on the ring or the grid: dlf's nets and losses without Lightning, so a
set-up can be tried in a few minutes before it becomes a config. Prints the mode metrics of 2,500 fixed-noise samples
every --every steps, and the median / 80th-percentile distance of the samples to their nearest centre.

    PYTHONPATH=src python scripts/gan_probe.py --data grid --pack 4 --scale 4 --lr 1e-3 --d-hidden 512,256,128 \
        --steps 10000 --every 2500

Same recipe as model=gan: Adam (beta1 --b1), both rates decaying linearly to zero over --steps, one D step and one G
step per batch, non-saturating G loss (--loss minimax for the course's), z ~ N(0, I).
"""

from __future__ import annotations

import argparse
import time

import torch


def main(argv=None) -> None:
    from dlf.data.mixtures import grid_centres, ring_centres, sample_mixture
    from dlf.metrics.modes import mode_stats
    from dlf.nets.gan import build_gan_nets
    from dlf.nets.gan_loss import discriminator_loss, generator_loss

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=("grid", "ring"), default="grid")
    ap.add_argument("--pack", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0, help="model.data_scale (grid: 4 is what auto picks)")
    ap.add_argument("--spectral-norm", action="store_true")
    ap.add_argument("--latent", type=int, default=2)
    ap.add_argument("--hidden", default="128,128,128")
    ap.add_argument("--d-hidden", default="", help="D's layer sizes (default: --hidden)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--b1", type=float, default=0.5)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--every", type=int, default=2500)
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
    opts = [torch.optim.Adam(n.parameters(), a.lr, betas=(a.b1, 0.999)) for n in (D, G)]
    scheds = [torch.optim.lr_scheduler.LinearLR(o, 1.0, 0.0, a.steps) for o in opts]
    gen = torch.Generator().manual_seed(a.seed)
    z_fixed = torch.randn(2500, a.latent, generator=torch.Generator().manual_seed(1234))
    pack = lambda x: x.reshape(len(x) // a.pack, -1)  # noqa: E731   m samples side by side
    t0 = time.time()
    for step in range(1, a.steps + 1):
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
        if step % a.every == 0 or step == a.steps:
            with torch.no_grad():
                samples = G(z_fixed)
            st = mode_stats(samples, centres, std)
            dist = torch.cdist(samples, centres).min(1).values
            print(f"step {step}: modes {st.modes}/{len(centres)}, high quality {100 * st.high_quality:.1f}%, "
                  f"KL {st.kl:.3f}, distance to nearest centre median {dist.median():.3f} "
                  f"p80 {dist.quantile(0.8):.3f}, {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
