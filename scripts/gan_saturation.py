"""What the course's min-max generator loss does early in training, measured: the generator's gradient norm under
g_loss=minimax and g_loss=non_saturating, from the same initial nets and the same batches.

    PYTHONPATH=src python scripts/gan_saturation.py [--data grid|ring] [--steps 400] [--every 50] [--seed 0]
                                                    [--d-head-start 0]

The nets and hyper-parameters are model=gan's (3x128 ReLU MLPs, latent 2, data_scale auto, Adam 1e-4 beta1 0.5,
batch 256). --d-head-start N first trains D alone for N steps (a D that wins, as when D learns faster than G). Each row:
the step, mean D(G(z)) on the generator's batch, and ||dL_G/dtheta_g|| (the whole generator's gradient, 2-norm) for
each loss. dL_G/ds is -D(G(z)) for minimax and -(1 - D(G(z))) for non-saturating (dlf.nets.gan_loss): while D wins
(D(G(z)) << 1) the minimax gradient is smaller by the factor D(G(z)) / (1 - D(G(z))).
"""

from __future__ import annotations

import argparse

import torch


def run(kind: str, data: str, steps: int, every: int, seed: int, head_start: int = 0) -> list[tuple[int, float, float]]:
    from dlf.data.mixtures import grid_centres, ring_centres, sample_mixture
    from dlf.nets.gan import build_gan_nets
    from dlf.nets.gan_loss import discriminator_loss, generator_loss

    centres, std = (grid_centres(), 0.05) if data == "grid" else (ring_centres(), 0.01)
    torch.manual_seed(seed)
    G, D = build_gan_nets("mlp", 2, (2,), output="linear", scale=float(centres.abs().max()))
    gen = torch.Generator().manual_seed(seed)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.5, 0.999))
    rows = []
    for step in range(1 - head_start, steps + 1):
        x = sample_mixture(centres, std, 256, gen)
        with torch.no_grad():
            fake = G(torch.randn(256, 2, generator=gen))
        d_loss = discriminator_loss(D(x), D(fake))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        if step < 1:
            continue                                   # D's head start: no generator step yet
        s = D(G(torch.randn(256, 2, generator=gen)))
        g_loss = generator_loss(s, kind)
        opt_g.zero_grad()
        g_loss.backward()
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in G.parameters()]))  # ||dL_G/dtheta_g||
        opt_g.step()
        if step == 1 or step % every == 0:
            rows.append((step, float(torch.sigmoid(s.detach()).mean()), float(norm)))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=("grid", "ring"), default="grid")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--d-head-start", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    mm = run("minimax", a.data, a.steps, a.every, a.seed, a.d_head_start)
    ns = run("non_saturating", a.data, a.steps, a.every, a.seed, a.d_head_start)
    print("| step | minimax: mean D(G(z)) | minimax: ‖∇θg L_G‖ | non-saturating: mean D(G(z)) | non-saturating: ‖∇θg L_G‖ |")
    print("|---|---|---|---|---|")
    for (step, d_mm, g_mm), (_, d_ns, g_ns) in zip(mm, ns):
        print(f"| {step} | {d_mm:.3f} | {g_mm:.2e} | {d_ns:.3f} | {g_ns:.2e} |")


if __name__ == "__main__":
    main()
