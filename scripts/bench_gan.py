"""Per-step time of the dlf GAN (Lightning, manual optimization) on the ring vs a hand-written plain-PyTorch loop with
the same nets and hyper-parameters (3x128 ReLU MLPs, latent 2, Adam 1e-4 beta1 0.5, batch 256, linear lr decay).

    PYTHONPATH=src python scripts/bench_gan.py [--steps 1000] [--repeats 3] [--threads 1]

Prints the median milliseconds per step (one D step + one G step) of each, and their ratio. The dlf time is taken
inside the training loop (from one batch's start to the next), so start-up, validation and testing are not counted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def plain_loop(steps: int, seed: int = 0) -> float:
    """Seconds per step of the plain loop (after 20 warm-up steps)."""
    from dlf.data.mixtures import ring_centres, sample_mixture
    from dlf.nets.gan import build_gan_nets

    torch.manual_seed(seed)
    G, D = build_gan_nets("mlp", 2, (2,), output="linear")
    g = torch.Generator().manual_seed(seed)
    data = sample_mixture(ring_centres(), 0.01, 256 * (steps + 20), g)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.5, 0.999))
    sch = [torch.optim.lr_scheduler.LinearLR(o, 1.0, 0.0, steps + 20) for o in (opt_d, opt_g)]
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    ones, zeros = torch.ones(256), torch.zeros(256)
    t0 = 0.0
    for i in range(steps + 20):
        if i == 20:
            t0 = time.perf_counter()
        x = data[i * 256:(i + 1) * 256]
        with torch.no_grad():
            fake = G(torch.randn(256, 2))
        d_loss = bce(D(x), ones) + bce(D(fake), zeros)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = bce(D(G(torch.randn(256, 2))), ones)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        for s in sch:
            s.step()
    return (time.perf_counter() - t0) / steps


class StepTimer:
    def __init__(self):
        import lightning as L

        class _CB(L.Callback):
            def __init__(cb):
                cb.times: list[float] = []

            def on_train_batch_start(cb, *a):
                cb.times.append(time.perf_counter())

        self.cb = _CB()

    def per_step(self) -> float:
        t = self.cb.times[20:]
        return (t[-1] - t[0]) / (len(t) - 1)


def dlf_loop(steps: int, tmp: Path) -> float:
    import lightning as L
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import open_dict

    from dlf.train import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=gan", "trainer=cpu", "logger=none", "callbacks=default",
                                          f"data.n_train={256 * (steps + 21)}", "trainer.max_epochs=1"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp)
        cfg.paths.data_dir = str(tmp / "data")
    L.seed_everything(0, verbose=False)
    dm = instantiate(cfg.data)
    facts = dm.prepare()
    model = instantiate(cfg.model, _partial_=True)(facts=facts, optimizer=instantiate(cfg.optimizer), scheduler=None)
    timer = StepTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, callbacks=[timer.cb], log_every_n_steps=50)
    trainer.fit(model, datamodule=dm)
    return timer.per_step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    plain, dlf = [], []
    with tempfile.TemporaryDirectory() as d:
        for r in range(a.repeats):
            plain.append(plain_loop(a.steps, seed=r))
            dlf.append(dlf_loop(a.steps, Path(d) / str(r)))
            print(f"repeat {r}: plain {plain[-1] * 1e3:.2f} ms/step, dlf {dlf[-1] * 1e3:.2f} ms/step", flush=True)
    mp, md = statistics.median(plain), statistics.median(dlf)
    print(f"median over {a.repeats} x {a.steps} steps ({a.threads} thread(s)): plain PyTorch {mp * 1e3:.2f} ms/step, "
          f"dlf {md * 1e3:.2f} ms/step, ratio dlf/plain {md / mp:.2f}")


if __name__ == "__main__":
    main()
