"""The workloads of scripts/bench.py: for each, dlf's config (Hydra overrides) and the hand-written training step that the
plain loop and Lightning's floor both run on the same nets, data, optimizer and seed.

The nets and the batches are dlf's own, built exactly as `dlf.run.train.run` builds them (seed, data module, model), so the
three sides start from the same weights and see the same batches in the same order; only the loop around the step
differs. Everything here uses what dlf had at commit ba4ec7b (dlf.run.train.CONFIG_DIR, the config groups, the systems'
`net`/`head`/`G`/`D` attributes, InMemoryDataModule), so `PYTHONPATH=<old checkout>/src` measures an older dlf.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

import lightning as L
import torch
import torch.nn.functional as F

from dlf.data.base import DataFacts, InMemoryDataModule


class ParityDataModule(InMemoryDataModule):
    """Lightning's parity workload (tests/parity_pytorch, AverageDataset): 300 sequences x 100 steps x 10 features,
    x ~ N(0, 1); target = top + roll(bottom) of the 10 features, read here at the last step and averaged to one value
    (dlf's sequence system regresses one number from h_T; Lightning's reads all 100 steps)."""

    def __init__(self, n: int = 300, seq_len: int = 100, batch_size: int = 30, seed: int = 0):
        super().__init__(batch_size=batch_size, seed=seed)
        self.n, self.seq_len = n, seq_len

    def build(self) -> None:
        g = torch.Generator().manual_seed(1234)
        x = torch.randn(self.n, self.seq_len, 10, generator=g)
        top, bottom = x.chunk(2, -1)
        y = (top + bottom.roll(shifts=1, dims=-1))[:, -1].mean(1, keepdim=True)  # [N, 1]
        self.train = self.val = self.test = (x, y)
        self.facts = DataFacts(name="parity", kind="sequence", target="regression", input_shape=(self.seq_len, 10),
                               in_features=10, seq_len=self.seq_len)


CLOCK = [time.perf_counter]  # bench.py --clock cpu puts time.process_time here (CPU time: robust to a loaded machine)


class StepClock(L.Callback):
    """The harness's clock on the Lightning sides and dlf's (a callback there, so every side carries the same one): the
    time at the start of every training batch, and the last loss the step returned (dlf's side reports it)."""

    last: StepClock | None = None

    def __init__(self):
        self.starts: list[float] = []
        self.loss = None
        StepClock.last = self

    def on_train_batch_start(self, *args):
        self.starts.append(CLOCK[0]())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.loss = outputs.get("loss") if isinstance(outputs, dict) else outputs  # {} from a step that returns None


def _ce_flat(m, batch):   # MLP classifier: J = cross-entropy of net(x flattened)
    x, y = batch
    return F.cross_entropy(m.net(x.flatten(1)), y)


def _xor(m, batch):       # MLPSystem, cost mse: J = 1/(2n) sum (y - sigmoid(z))^2
    x, y = batch
    y_hat = torch.sigmoid(m.net(x.flatten(1)))
    return 0.5 * ((y - y_hat) ** 2).sum() / x.shape[0]


def _cnn(m, batch):       # CNNSystem: the same random shift (dlf's function, global RNG), then cross-entropy
    x, y = batch
    if m.augment_shift:
        x = m.shift(x)
    return F.cross_entropy(m.net(x), y)


def _cnn1d(m, batch):     # signals [N, L] -> [N, 1, L]
    x, y = batch
    return F.cross_entropy(m.net(x.unsqueeze(1)), y)


def _last_mse(m, batch):  # SequenceSystem regression: y_hat = V h_T, J = mean (y_hat - y)^2
    x, y = batch
    hs, _ = m.net(x)
    return F.mse_loss(m.head(hs[:, -1]), y)


# name: (dlf overrides, loss of one batch, default steps). The GAN has its own step (two optimizers), below.
# dlf keeps every callback of the user's run: the figures drawn after fit (or at the start, GradientThroughTime) are not
# inside the timed steps; CostCurve's per-step record of the loss is.
WORKLOADS = {
    "parity": (["model=lstm", "model.net.hidden_size=20", "optimizer=adam", "optimizer.lr=0.02",
                "trainer.gradient_clip_val=null"], _last_mse, 100),
    "xor": (["model=mlp_xor"], _xor, 500),
    "mlp": (["model=mlp"], _ce_flat, 300),
    "cnn": (["model=cnn"], _cnn, 150),
    "cnn1d": (["model=cnn1d"], _cnn1d, 300),
    "rnn": (["experiment=rnn_adding"], _last_mse, 60),
    "lstm": (["experiment=lstm_adding"], _last_mse, 40),
    "gan": (["model=gan"], None, 300),
}


GAN_BATCH = 1024  # the ring's batch (data=ring), stated so that an older dlf (batch 256) measures the same workload


def steps_overrides(name: str, steps: int) -> list[str]:
    """Run exactly `steps` training batches. The GAN is sized in epochs (its linear decay spans the run), so one epoch
    of `steps` batches of GAN_BATCH; the others stop at trainer.max_steps (optimizer steps = batches)."""
    if name == "gan":
        return [f"data.n_train={GAN_BATCH * steps}", f"data.batch_size={GAN_BATCH}", "trainer.max_epochs=1",
                "trainer.max_steps=-1"]
    return [f"trainer.max_steps={steps}", "trainer.max_epochs=-1", "++trainer.max_time=null"]


def build(cfg):
    """Seed, data module, model: the same calls in the same order as dlf.run.train.run (so the same weights)."""
    from hydra.utils import instantiate

    torch.set_float32_matmul_precision("high")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = instantiate(cfg.data)
    facts = dm.prepare()
    optimizer = instantiate(cfg.optimizer) if cfg.get("optimizer") else None
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    try:  # dlf's one builder
        from dlf.run.build import build_system
    except ImportError:  # an older dlf (before dlf.run; before dlf.speed its model configs had none of these keys)
        try:
            from dlf.speed import model_config
        except ImportError:
            model_config = lambda m: m  # noqa: E731

        def build_system(cfg, facts, optimizer, scheduler):
            return instantiate(model_config(cfg.model), _partial_=True)(facts=facts, optimizer=optimizer,
                                                                        scheduler=scheduler)
    model = build_system(cfg, facts, optimizer, scheduler)
    return dm, model, optimizer


class Step:
    """One training step written by hand, on dlf's modules: used as is by the plain loop and inside the floor's
    LightningModule. `optimizers()` makes the optimizer(s) (and the GAN's schedules); `run(batch, opts)` trains."""

    def __init__(self, name: str, cfg, model, optimizer, steps: int, perturb: bool = False, bf16: bool = False):
        self.name, self.model, self.steps = name, model, steps
        # trainer.precision=bf16-mixed: the forward pass and the loss under CPU autocast, as Lightning's plugin does
        self.autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else nullcontext
        self.loss_fn = WORKLOADS[name][1]
        self.clip = cfg.trainer.get("gradient_clip_val")
        self.factory = optimizer
        self.lr_scale = 2.0 if perturb else 1.0  # test-only: makes this side compute something else

    def modules(self) -> list[torch.nn.Module]:
        m = self.model
        return [m.G, m.D] if self.name == "gan" else [m.net] + ([m.head] if hasattr(m, "head") else [])

    def optimizers(self):
        if self.name == "gan":
            opts = [self.factory(self.model.D.parameters()), self.factory(self.model.G.parameters())]
            scheds = [torch.optim.lr_scheduler.LinearLR(o, 1.0, 0.0, total_iters=self.steps) for o in opts]
        else:
            opts, scheds = [self.factory([p for mod in self.modules() for p in mod.parameters()])], []
        for o in opts:
            for g in o.param_groups:
                g["lr"] *= self.lr_scale
        return opts, scheds

    def run(self, batch, opts, scheds, backward=None):
        """One step; `backward(loss)` defaults to loss.backward() (the floor passes manual_backward)."""
        backward = backward or (lambda loss: loss.backward())
        if self.name == "gan":
            return self._gan(batch[0], opts, scheds, backward)
        (opt,) = opts
        with self.autocast():
            loss = self.loss_fn(self.model, batch)
        opt.zero_grad()
        backward(loss)
        if self.clip:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], self.clip)
        opt.step()
        return loss.detach()

    def _gan(self, x, opts, scheds, backward):
        """D step on real x and G(z) (no grad into G), then G step (D frozen): non-saturating, z ~ N(0, 1)."""
        G, D = self.model.G, self.model.D
        (opt_d, opt_g), m = opts, len(x)
        with torch.no_grad(), self.autocast():
            fake = G(torch.randn(m, self.model.latent_dim, device=x.device))
        with self.autocast():
            d_loss = -(F.logsigmoid(D(x)).mean() + F.logsigmoid(-D(fake)).mean())  # -(E log D(x) + E log(1-D(G(z))))
        opt_d.zero_grad()
        backward(d_loss)
        opt_d.step()
        scheds[0].step()
        D.requires_grad_(False)
        with self.autocast():
            g_loss = -F.logsigmoid(D(G(torch.randn(m, self.model.latent_dim, device=x.device)))).mean()  # -E log D(G(z))
        opt_g.zero_grad()
        backward(g_loss)
        opt_g.step()
        scheds[1].step()
        D.requires_grad_(True)
        return d_loss.detach()
