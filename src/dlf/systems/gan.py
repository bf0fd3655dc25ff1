"""The GAN system: a generator G and a discriminator D trained in turn on the course's min-max game.

    min_G max_D  L(D, G) = E_{x~P_r}[log D(x)] + E_{z~P_z}[log(1 - D(G(z)))]

Each training batch of m real points is one discriminator step (ascend the whole L in theta_d); every `d_steps`-th
batch is also one generator step (descend log(1 - D(G(z))) in theta_g, or the non-saturating -log D(G(z))).
The losses, with the formulas beside the code, are in dlf.nets.gan_loss; the two nets in dlf.nets.gan.
With model.pack=m (PacGAN) D scores packs of m samples, real with real and fake with fake, so every 1/m sum above
runs over the N/m packs of a batch of N; the losses themselves do not change. model.spectral_norm=true normalises D.
model.g_ema=d keeps an exponential moving average of G's weights, theta_ema <- d theta_ema + (1 - d) theta_g after
every generator step (torch.optim.swa_utils.AveragedModel); scoring, figures and generation then use the average.

Lightning 2 manual optimization: two optimizers (D first, G second) built from the top-level `optimizer` group
unless the model config gives `d_optimizer` / `g_optimizer`; `toggle_optimizer` freezes the other net's parameters
during a step; schedulers (e.g. scheduler=linear) are stepped here, once per step of their optimizer, and
scheduler=plateau once a validation, with the validated `monitor` (Lightning steps no scheduler of a module that
optimizes manually). Lightning counts
every optimizer step in trainer.global_step, so runs are sized in epochs, not max_steps. Gradient clipping is done
here (model.clip_grad_norm); Trainer(gradient_clip_val=...) cannot be used with manual optimization.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch

from dlf import lightning_internals as internals
from dlf.data.base import DataFacts
from dlf.errors import DlfError, require
from dlf.metrics.modes import class_stats, mode_stats
from dlf.nets.gan import Standardize
from dlf.nets.gan_loss import check, discriminator_loss, generator_loss
from dlf.systems.base import System

PRIORS = ("normal", "uniform")


class GANSystem(System):
    ACCEPTS = ("points", "image", "vector")

    def __init__(self, net: Callable, facts: DataFacts, latent_dim: int = 2, prior: str = "normal",
                 g_loss: str = "non_saturating", d_steps: int = 1, impl: str = "torch", output: str = "auto",
                 d_optimizer: Callable | None = None, g_optimizer: Callable | None = None,
                 clip_grad_norm: float | None = None, n_eval: int = 2500, eval_seed: int = 1234,
                 n_sigma: float = 3.0, classifier_cache: str | None = None, pack: int = 1,
                 spectral_norm: bool = False, data_scale: float | str = "auto", g_ema: float | None = None,
                 optimizer: Callable | None = None, scheduler: Callable | None = None):
        super().__init__(facts, optimizer, scheduler)
        self.automatic_optimization = False
        check(g_loss, impl)
        require(prior in PRIORS, f"model.prior={prior!r} is not known: choose normal (N(0,1)) or uniform (U(-1,1))")
        require(isinstance(d_steps, int) and d_steps >= 1, f"model.d_steps={d_steps!r} must be an integer >= 1")
        require(clip_grad_norm is None or clip_grad_norm > 0,
                f"model.clip_grad_norm={clip_grad_norm!r} must be positive or null")
        require(isinstance(n_eval, int) and n_eval > 0, f"model.n_eval={n_eval!r} must be a positive integer")
        if output == "auto":  # image pixels are in [0, 1]; points are unbounded
            output = "sigmoid" if facts.kind == "image" else "linear"
        require(isinstance(pack, int) and pack >= 1, f"model.pack={pack!r} must be an integer >= 1 (1: no packing)")
        self.pack = pack
        if data_scale == "auto":  # points: the largest centre coordinate (ring 1, grid 4); images: 1
            centres = facts.extra.get("centres")
            data_scale = float(torch.tensor(centres).abs().max()) if centres is not None else 1.0
        require(isinstance(data_scale, (int, float)), f"model.data_scale={data_scale!r} must be a number or auto")
        self.G, self.D = net(latent_dim=latent_dim, sample_shape=facts.input_shape, output=output, pack=pack,
                             spectral_norm=bool(spectral_norm), scale=float(data_scale))
        # Images the data module standardises (torchvision data: (pixel - mean) / std per channel) are not in [0, 1]:
        # G's output unit makes pixels and the data's own standardisation follows, so D and the scorer see G's samples
        # in the space of the real ones (a sigmoid G against standardised data is told apart by any pixel below 0)
        self.pixels = None
        if facts.kind == "image" and "mean" in facts.extra and "std" in facts.extra:
            self.pixels = Standardize(facts.extra["mean"], facts.extra["std"])
            self.G.out = torch.nn.Sequential(self.G.out, self.pixels)
        require(g_ema is None or (isinstance(g_ema, float) and 0 < g_ema < 1),
                f"model.g_ema={g_ema!r} must be a decay in (0, 1), e.g. 0.999, or null (no average of G)")
        self.G_ema = None
        if g_ema is not None:  # theta_ema <- d theta_ema + (1 - d) theta_g, updated after each G step
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.G_ema = AveragedModel(self.G, multi_avg_fn=get_ema_multi_avg_fn(g_ema), use_buffers=True)
            self.G_ema.requires_grad_(False)
        self.latent_dim, self.prior, self.g_loss_kind, self.impl = latent_dim, prior, g_loss, impl
        self.example_input_array = torch.zeros(1, latent_dim)  # forward is G(z): the model summary runs it on z = 0
        self.d_steps, self.clip_grad_norm, self.n_sigma = d_steps, clip_grad_norm, n_sigma
        self.d_optimizer_factory, self.g_optimizer_factory = d_optimizer, g_optimizer
        self.classifier_cache, self.eval_seed = classifier_cache, eval_seed
        self.centres = torch.tensor(facts.extra["centres"]) if "centres" in facts.extra else None
        require(self.centres is not None or (facts.target == "classes" and facts.num_classes),
                f"model=gan scores its samples against known mode centres (data=ring, grid) or with a classifier "
                f"(labelled data such as data=digits); data={facts.name} has neither: pick one of those")
        # Fixed noise: every validation epoch scores (and draws) the same z, so epochs compare fairly.
        gen = torch.Generator().manual_seed(eval_seed)
        self.register_buffer("fixed_z", self.sample_z(n_eval, gen), persistent=False)
        self.register_buffer("test_z", self.sample_z(n_eval, gen), persistent=False)
        self._scorer: list = []          # the image classifier, kept out of state_dict and parameters()
        self._frechet: dict = {}         # "net": the feature net; split -> its Frechet (reference features), built once
        self.last_samples: torch.Tensor | None = None

    # ---- sampling ---------------------------------------------------------------------------------------------
    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ P_z: N(0, 1) or U(-1, 1), shape [n, latent_dim]."""
        dev = self.fixed_z.device if hasattr(self, "fixed_z") and generator is None else "cpu"
        if self.prior == "normal":
            return torch.randn(n, self.latent_dim, generator=generator, device=dev)
        return torch.rand(n, self.latent_dim, generator=generator, device=dev) * 2 - 1

    @property
    def G_eval(self) -> torch.nn.Module:
        """The generator that is scored and sampled: the weight average when model.g_ema is set, else G."""
        return self.G if self.G_ema is None else self.G_ema.module

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """G(z): samples shaped like the data."""
        return self.G_eval(z)

    def nets(self) -> list[torch.nn.Module]:
        """The two players: G and D."""
        return [self.G, self.D]

    def scratch_option(self) -> str | None:
        """The GAN's from-scratch part is its losses (model.impl=scratch: dlf.nets.gan_loss)."""
        return "model.impl=scratch" if self.impl == "scratch" else super().scratch_option()

    @torch.no_grad()
    def generate(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        was = self.training
        self.eval()
        x = self.G_eval(self.sample_z(n, generator).to(self.fixed_z.device))
        self.train(was)
        return x

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """n samples of G in the data's units: points [n, 2], or images [n, C, H, W] with pixels in [0, 1]."""
        require(isinstance(n, int) and n > 0, f"n={n!r} must be a positive number of samples")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        x = self.generate(n, gen)
        return (self.to_pixels(x) if self.facts.kind == "image" else x).cpu()

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Samples as pixels in [0, 1] for pictures: undoes the data's standardisation (if it has one)."""
        return x if self.pixels is None else self.pixels.inverse(x)

    def pack_d(self, x: torch.Tensor) -> torch.Tensor:
        """D on packs: [N, C, ...] -> [N/m, m*C, ...], samples j*m .. j*m+m-1 side by side -> one logit per pack.
        A remainder of N mod m samples (a short last batch) is left out."""
        m = self.pack
        x = x[: len(x) - len(x) % m]
        return self.D(x.reshape(len(x) // m, m * x.shape[1], *x.shape[2:]))

    # ---- optimizers -------------------------------------------------------------------------------------------
    def _scheduler(self, opt, n_steps: int):
        """One optimizer's schedule, spanning that optimizer's own `n_steps` in this run: the GAN passes total_iters
        itself (Lightning's trainer.max_steps counts the steps of both optimizers, so it sizes neither schedule).
        scheduler=plateau has no length: it follows `monitor`."""
        if self.steps_on_monitor():
            self.plateau_monitor()  # one line now if the run has no monitor
            return self.scheduler_factory(opt)
        return self.scheduler_factory(opt, total_iters=max(1, n_steps))

    def configure_optimizers(self):
        default = self.optimizer_factory or functools.partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999))
        opt_d = (self.d_optimizer_factory or default)(self.D.parameters())
        opt_g = (self.g_optimizer_factory or default)(self.G.parameters())
        if self.scheduler_factory is None:
            return [opt_d, opt_g]
        batches = self.stepping_batches("trainer.max_epochs") if internals.attached_trainer(self) is not None else 1
        return [opt_d, opt_g], [self._scheduler(opt_d, batches), self._scheduler(opt_g, batches // self.d_steps)]

    def configure_callbacks(self):
        # Runs before Lightning's own check, so the user gets one line that says what to do instead.
        clip = self.trainer.gradient_clip_val
        if clip:
            raise DlfError(f"trainer.gradient_clip_val={clip} cannot be used with the GAN (manual optimization): "
                           f"set trainer.gradient_clip_val=null and model.clip_grad_norm={clip}")
        batch = getattr(getattr(self.trainer, "datamodule", None), "batch_size", None)
        if self.pack > 1 and isinstance(batch, int) and batch % self.pack:
            raise DlfError(f"data.batch_size={batch} is not divisible by model.pack={self.pack}: D judges packs of "
                           f"{self.pack} samples; pick a batch size that is a multiple of {self.pack}")
        if self.trainer.accumulate_grad_batches != 1:
            raise DlfError("trainer.accumulate_grad_batches must be 1 for the GAN (manual optimization)")
        return []

    def _optimize(self, opt, loss: torch.Tensor, sched) -> None:
        """Backpropagate `loss`, clip if asked, step `opt` and its scheduler."""
        opt.zero_grad()
        self.manual_backward(loss)
        if self.clip_grad_norm:
            self.clip_gradients(opt, gradient_clip_val=self.clip_grad_norm, gradient_clip_algorithm="norm")
        opt.step()
        if sched is not None and not self.steps_on_monitor():  # plateau: once a validation (System.step_plateau)
            sched.step()

    # ---- training: manual, two optimizers (System.training_step is replaced, System.step serves val and test) -----
    def training_step(self, batch, batch_idx):
        x = batch[0]
        m = len(x)
        opt_d, opt_g = self.optimizers()
        sched_d, sched_g = self.lr_schedulers() or (None, None)

        # Discriminator: ascend 1/m sum [log D(x_i) + log(1 - D(G(z_i)))], i.e. descend L_D, with G held fixed.
        self.toggle_optimizer(opt_d)            # only theta_d takes gradients
        with torch.no_grad():
            fake = self.G(self.sample_z(m))
        d_loss = discriminator_loss(self.pack_d(x), self.pack_d(fake), self.impl)  # packs of model.pack samples
        self._optimize(opt_d, d_loss, sched_d)
        self.untoggle_optimizer(opt_d)
        self.log_train_step("train/d_loss", d_loss.detach(), prog_bar=True)

        # Generator, once every d_steps batches: descend log(1 - D(G(z))) (minimax) or -log D(G(z)) (non-saturating).
        if (batch_idx + 1) % self.d_steps == 0:
            self.toggle_optimizer(opt_g)        # only theta_g takes gradients; D is frozen while the graph is built
            s_gen = self.pack_d(self.G(self.sample_z(m)))
            g_loss = generator_loss(s_gen, self.g_loss_kind, self.impl)
            self._optimize(opt_g, g_loss, sched_g)
            self.untoggle_optimizer(opt_g)
            if self.G_ema is not None:
                self.G_ema.update_parameters(self.G)
            self.log_train_step("train/g_loss", g_loss.detach(), prog_bar=True)
            self.log_train_step("train/d_fake", torch.sigmoid(s_gen.detach()).mean())  # D(G(z)): near 0.5 at equilibrium
        return d_loss.detach()

    # ---- evaluation -------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        trainer = internals.attached_trainer(self)
        dm = getattr(trainer, "datamodule", None)
        if self.has_frechet() and not self._frechet:  # a missing or damaged feature net: one line before training
            from dlf.metrics import frechet

            self._frechet["net"] = frechet.load(self.facts.name)
        if self._scorer or self.centres is not None or self.facts.target != "classes" or dm is None:
            return
        from dlf.metrics.classifier import load_or_train

        x, y = dm.train[0], dm.train[1]
        self._scorer.append(load_or_train(self.classifier_path(len(x)), x, y, self.facts.num_classes))

    def classifier_path(self, n_train: int) -> str | None:
        """<classifier_cache>/<dataset name>_<n training images>_mlp.pt: one scorer per dataset (mnist,
        fashion_mnist and cifar10 share a data module class, so the class cannot be the key)."""
        if not self.classifier_cache:
            return None
        return str(Path(self.classifier_cache) / f"{self.facts.name}_{n_train}_mlp.pt")

    def metric_names(self) -> set[str]:
        names = {"train/d_loss", "train/g_loss", "train/d_fake", "val/d_loss", "test/d_loss"}
        if self.centres is not None or self.facts.target == "classes":  # what score() can measure, as in _score_epoch
            names |= {f"{s}/{n}" for s in ("val", "test") for n in ("high_quality", "modes", "kl", "score")}
        if self.has_frechet():
            names |= {"val/fd", "test/fd", "test/fd_floor", "test/fd_noise"}
        return names

    def has_frechet(self) -> bool:
        """Whether the samples get a Fréchet distance: images of data that dlf ships a feature net for."""
        from dlf.metrics import frechet

        return self.facts.kind == "image" and frechet.ships(self.facts.name)

    def frechet(self, dm, split: str):
        """The Fréchet distance (dlf.metrics.frechet.Frechet) to the first N images of dm's `split` ("val" or "test"),
        N = min(model.n_eval, the split's size), in the features of dlf's net for this data; built once a split."""
        if split not in self._frechet:
            from dlf.metrics import frechet

            images = getattr(dm, split)[0]
            n = min(len(self.fixed_z), len(images))
            if "net" not in self._frechet:
                self._frechet["net"] = frechet.load(self.facts.name)
            self._frechet[split] = frechet.Frechet(self._frechet["net"], self.to_pixels(images[:n]).cpu())
        return self._frechet[split]

    def frechet_stats(self, samples: torch.Tensor, dm, split: str) -> dict[str, float]:
        """{split}/fd of `samples` (data units); at test also the floor (N training images: test/fd_floor) and the
        ceiling (N images of uniform noise: test/fd_noise) at the same N."""
        if dm is None or not self.has_frechet():
            return {}
        f = self.frechet(dm, split)
        out = {f"{split}/fd": f.fd(self.to_pixels(samples))}
        if split == "test":
            out |= {"test/fd_floor": f.floor(self.to_pixels(dm.train[0][: f.n])), "test/fd_noise": f.ceiling()}
        return out

    def step(self, batch, batch_idx: int, stage: str) -> torch.Tensor:
        """A validation or test batch: D's loss on real data and on G's samples (training is training_step above)."""
        # The noise comes from its own generator (seeded by the batch), never from the global RNG that the training
        # step draws from: a validation must not shift the training noise, or a run resumed from a checkpoint written
        # before that validation would draw different z than the run left alone.
        x = batch[0]
        gen = torch.Generator().manual_seed(self.eval_seed + 1 + batch_idx)
        z = self.sample_z(len(x), gen).to(x.device)
        s_real, s_fake = self.pack_d(x), self.pack_d(self.G_eval(z))
        d_loss = discriminator_loss(s_real, s_fake)
        self.log(f"{stage}/d_loss", d_loss, prog_bar=False)
        return d_loss

    def score(self, samples: torch.Tensor, prefix: str) -> dict[str, float]:
        """Mode coverage of `samples`: against the mixture's centres (points) or by the classifier (images)."""
        if self.centres is not None:
            return mode_stats(samples, self.centres, self.facts.extra["std"], self.n_sigma).as_dict(prefix)
        if self._scorer:
            with torch.no_grad():
                probs = torch.softmax(self._scorer[0](samples.flatten(1).float().cpu()), 1)
            return class_stats(probs).as_dict(prefix)
        return {}

    def _score_epoch(self, z: torch.Tensor, prefix: str) -> None:
        self.last_samples = self.G_eval(z).detach()
        stats = self.score(self.last_samples, prefix)
        stats |= self.frechet_stats(self.last_samples, getattr(internals.attached_trainer(self), "datamodule", None),
                                    prefix)
        shown = (f"{prefix}/modes", f"{prefix}/high_quality")
        if stats:
            self.log_dict({k: v for k, v in stats.items() if k in shown}, prog_bar=True)
            self.log_dict({k: v for k, v in stats.items() if k not in shown}, prog_bar=False)

    def on_validation_epoch_end(self):
        super().on_validation_epoch_end()
        self._score_epoch(self.fixed_z, "val")

    def on_test_epoch_end(self):
        super().on_test_epoch_end()
        self._score_epoch(self.test_z, "test")
