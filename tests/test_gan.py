"""The GAN family: metrics on hand-made samples, the losses against their formulas, the torch/scratch twins, the nets'
shapes, start-up errors, smoke runs of each GAN config and a short seeded ring run."""

from __future__ import annotations

import math

import pytest
import torch

from dlf.data.mixtures import grid_centres, ring_centres
from dlf.errors import DlfError
from dlf.metrics.modes import class_stats, kl_to_uniform, mode_stats
from dlf.nets.gan import build_gan_nets
from dlf.nets.gan_loss import discriminator_loss, generator_loss
from dlf.run.train import run

RING = ring_centres()


# ---- metrics --------------------------------------------------------------------------------------------------
def test_ring_and_grid_centres():
    assert torch.allclose(RING[0], torch.tensor([1.0, 0.0]))
    assert torch.allclose(RING[2], torch.tensor([0.0, 1.0]), atol=1e-6)
    assert torch.allclose(RING.norm(dim=1), torch.ones(8))
    g = grid_centres()
    assert g.shape == (25, 2) and sorted(set(g[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]


def test_mode_stats_all_modes_evenly():
    samples = RING.repeat(10, 1) + 0.005  # 80 points, 10 per mode, all within 3 std (0.03) of their centre
    s = mode_stats(samples, RING, std=0.01)
    assert s.high_quality == 1.0 and s.modes == 8 and s.kl == pytest.approx(0.0, abs=1e-12)
    assert s.counts.tolist() == [10] * 8


def test_mode_stats_one_mode():
    samples = torch.cat([RING[3:4].repeat(30, 1), torch.zeros(10, 2)])  # 30 on mode 3, 10 at the centre (far)
    s = mode_stats(samples, RING, std=0.01)
    assert s.high_quality == pytest.approx(0.75) and s.modes == 1
    assert s.kl == pytest.approx(math.log(8))  # all mass on one of 8 bins: KL = log 8
    assert s.as_dict("val")["val/score"] == pytest.approx(1.75)


def test_mode_stats_no_high_quality_samples():
    s = mode_stats(RING * 0.5, RING, std=0.01)  # halfway to the centre: 0.5 away from every mode, >> 3 std
    assert s.high_quality == 0.0 and s.modes == 0 and math.isnan(s.kl)


def test_mode_stats_three_sigma_boundary_and_two_modes():
    samples = torch.stack([RING[0] + torch.tensor([0.029, 0.0]), RING[0] + torch.tensor([0.031, 0.0]),
                           RING[4], RING[4]])
    s = mode_stats(samples, RING, std=0.01)
    assert s.high_quality == 0.75 and s.modes == 2
    assert s.kl == pytest.approx((1 / 3) * math.log(8 / 3) + (2 / 3) * math.log(16 / 3))


def test_kl_to_uniform_known_values():
    assert kl_to_uniform(torch.tensor([5, 5, 0, 0])) == pytest.approx(math.log(2))
    assert kl_to_uniform(torch.tensor([1, 1, 1, 1])) == pytest.approx(0.0)


def test_class_stats():
    probs = torch.zeros(100, 10)
    probs[torch.arange(100), torch.arange(100) % 10] = 1.0  # 10 confident samples per class
    s = class_stats(probs)
    assert (s.high_quality, s.modes) == (1.0, 10) and s.kl == pytest.approx(0.0, abs=1e-12)
    probs[:, :] = 0.1  # nothing confident
    s = class_stats(probs)
    assert (s.high_quality, s.modes) == (0.0, 0) and math.isnan(s.kl)


# ---- losses ---------------------------------------------------------------------------------------------------
S_REAL = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
S_FAKE = torch.tensor([-3.0, 0.0, 1.5], dtype=torch.float64)


def _d(s):
    return 1.0 / (1.0 + torch.exp(-s))


@pytest.mark.parametrize("impl", ["torch", "scratch"])
def test_losses_equal_their_formulas(impl):
    minimax = generator_loss(S_FAKE, "minimax", impl)
    assert minimax.item() == pytest.approx(torch.log(1 - _d(S_FAKE)).mean().item(), rel=1e-12)
    ns = generator_loss(S_FAKE, "non_saturating", impl)
    assert ns.item() == pytest.approx(-torch.log(_d(S_FAKE)).mean().item(), rel=1e-12)
    d = discriminator_loss(S_REAL, S_FAKE, impl)
    expect = -(torch.log(_d(S_REAL)).mean() + torch.log(1 - _d(S_FAKE)).mean())
    assert d.item() == pytest.approx(expect.item(), rel=1e-12)


def test_minimax_hand_computed_value():
    # D(G(z)) = 0.5 for logit 0: log(1 - 0.5) = -log 2
    assert generator_loss(torch.zeros(4), "minimax").item() == pytest.approx(-math.log(2), rel=1e-6)


def test_scratch_losses_match_torch_with_gradients():
    torch.manual_seed(0)
    s_real, s_fake = torch.randn(50, dtype=torch.float64) * 3, torch.randn(50, dtype=torch.float64) * 3
    for fn in (lambda a, b, i: discriminator_loss(a, b, i), lambda a, b, i: generator_loss(b, "minimax", i),
               lambda a, b, i: generator_loss(b, "non_saturating", i)):
        grads = []
        for impl in ("torch", "scratch"):
            a, b = s_real.clone().requires_grad_(), s_fake.clone().requires_grad_()
            loss = fn(a, b, impl)
            ga, gb = torch.autograd.grad(loss, (a, b), allow_unused=True)
            grads.append((loss.detach(), ga, gb))
        (l1, a1, b1), (l2, a2, b2) = grads
        torch.testing.assert_close(l1, l2, rtol=1e-12, atol=1e-12)
        for x, y in ((a1, a2), (b1, b2)):
            if x is None:
                assert y is None or torch.all(y == 0)
            else:
                torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


def test_minimax_gradient_saturates_and_non_saturating_does_not():
    s = torch.tensor([-8.0], requires_grad=True)  # D(G(z)) ~ 3e-4: D rejects the fake easily
    (g_mm,) = torch.autograd.grad(generator_loss(s, "minimax"), s)
    (g_ns,) = torch.autograd.grad(generator_loss(s, "non_saturating"), s)
    assert abs(g_mm.item()) < 1e-3 and abs(g_ns.item()) > 0.99


# ---- nets -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,shape", [("mlp", (2,)), ("mlp", (1, 8, 8)), ("dcgan", (1, 8, 8)),
                                        ("dcgan", (1, 28, 28))])
def test_net_shapes(kind, shape):
    G, D = build_gan_nets(kind, 16, shape, output="sigmoid" if len(shape) == 3 else "linear")
    x = G(torch.randn(5, 16))
    assert x.shape == (5, *shape) and D(x).shape == (5,)


def test_dcgan_rejects_points():
    with pytest.raises(DlfError, match="dcgan needs image data"):
        build_gan_nets("dcgan", 2, (2,))


# ---- runs -----------------------------------------------------------------------------------------------------
def test_bad_options_fail_in_one_line(tmp_path, make_cfg):
    for override, match in (("model.g_loss=wasserstein", "g_loss"), ("model.prior=cauchy", "prior"),
                            ("model.d_steps=0", "d_steps")):
        with pytest.raises(DlfError, match=match):
            run(make_cfg(["model=gan", override, "logger=none"], tmp_path))


def test_gradient_clip_val_is_refused(tmp_path, make_cfg):
    with pytest.raises(DlfError, match="model.clip_grad_norm"):
        run(make_cfg(["model=gan", "trainer.gradient_clip_val=1.0", "logger=none"], tmp_path))


def test_gan_refuses_data_it_cannot_score(tmp_path, make_cfg):
    with pytest.raises(DlfError, match="data=moons"):
        run(make_cfg(["model=gan", "data=moons", "logger=none"], tmp_path))


def test_mlp_model_refuses_the_ring(tmp_path, make_cfg):
    with pytest.raises(DlfError, match="ring"):
        run(make_cfg(["model=mlp", "data=ring", "logger=none"], tmp_path))


SMOKE = [["model=gan"], ["model=gan", "data=grid", "model.g_loss=minimax", "model.prior=uniform", "model.d_steps=2"],
         ["model=gan", "data=digits", "model.impl=scratch", "model.clip_grad_norm=1.0"], ["model=dcgan"],
         ["model=gan", "optimizer=sgd", "scheduler=none"], ["model=gan", "scheduler=linear"]]


@pytest.mark.parametrize("overrides", SMOKE, ids=lambda o: " ".join(o))
def test_smoke(overrides, tmp_path, make_cfg):
    cfg = make_cfg([*overrides, "data.batch_size=32"], tmp_path)
    m = run(cfg)
    assert "test/modes" in m and 0 <= m["test/modes"] <= (10 if "digits" in str(cfg.data._target_).lower() else 25)
    assert math.isfinite(m["test/d_loss"])
    assert list((tmp_path / "plots").glob("samples_*.png")), "the sample figure was not written"


def test_generate_from_checkpoint(tmp_path, make_cfg, root):
    """scripts/generate.py rebuilds the model from the run's saved config and writes N samples (CSV + scatter)."""
    import importlib.util

    from omegaconf import OmegaConf

    cfg = make_cfg(["model=gan", "logger=none"], tmp_path)
    run(cfg)
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")  # what Hydra saves in a CLI run's dir
    spec = importlib.util.spec_from_file_location("dlf_generate", root / "scripts" / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    out = tmp_path / "gen"
    gen.main([str(tmp_path), "-n", "300", "-o", str(out), "--ckpt", "last"])
    rows = (out / "samples.csv").read_text().strip().splitlines()
    assert rows[0] == "x1,x2" and len(rows) == 301 and (out / "samples.png").is_file()
    with pytest.raises(SystemExit):
        gen.main([str(tmp_path / "nowhere")])


@pytest.mark.slow  # a subprocess: its imports alone take long on a busy machine; the in-process test above covers it
def test_cli_runs_the_gan_and_refuses_clipping(tmp_path, run_cli, root):
    r = run_cli(["model=gan", "trainer.gradient_clip_val=0.5"], cwd=tmp_path, env={"PYTHONPATH": str(root / "src")})
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0
    assert "model.clip_grad_norm=0.5" in r.stderr


@pytest.mark.slow
def test_ring_run_covers_most_modes(tmp_path, make_cfg):
    cfg = make_cfg(["model=gan", "trainer=cpu", "logger=none", "trainer.max_epochs=4"], tmp_path, fast=False)
    m = run(cfg)
    assert m["test/modes"] >= 6, {k: v for k, v in m.items() if k.startswith("test/")}
