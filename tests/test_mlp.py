"""The MLP family: hand-written backprop equals autograd, XOR is learned, the course exercise is reproduced."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import open_dict

from dlf.nets.costs import scratch_cost, torch_cost
from dlf.nets.mlp import ScratchMLP, TorchMLP, build_mlp
from dlf.run.train import run

CASES = [
    # (in, out, hidden, activation, cost, output)
    (2, 1, [5], "sigmoid", "mse", "sigmoid"),
    (2, 1, [5], "sigmoid", "sum_mse", "sigmoid"),
    (3, 1, [4, 6], "tanh", "cross_entropy", "sigmoid"),
    (7, 4, [8, 5], "relu", "cross_entropy", "softmax"),
    (5, 3, [6], "tanh", "mse", "softmax"),
]


def _target(n, out, output, gen):
    if output == "sigmoid":
        return torch.randint(0, 2, (n, out), generator=gen).double()
    return torch.randint(0, out, (n,), generator=gen)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[3]}-{c[4]}-{c[5]}-{len(c[2])}h" for c in CASES])
def test_scratch_backprop_equals_autograd(case):
    inp, out, hidden, act, cost, output = case
    torch.manual_seed(0)
    ref = TorchMLP(inp, out, hidden, act, init="default").double()
    mine = ScratchMLP(inp, out, hidden, act, init="default").double().copy_from(ref)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(9, inp, generator=gen, dtype=torch.float64)
    y = _target(9, out, output, gen)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    z_ref, z_mine = ref(x1), mine(x2)
    torch.testing.assert_close(z_mine, z_ref, rtol=0, atol=1e-12)
    j_ref = torch_cost(z_ref, y, cost, output)
    j_mine = scratch_cost(z_mine, y, cost, output)
    torch.testing.assert_close(j_mine, j_ref, rtol=0, atol=1e-12)
    j_ref.backward()
    j_mine.backward()
    for lin, w, b in zip(ref.linears, mine.weights, mine.biases):
        torch.testing.assert_close(w.grad, lin.weight.grad.T, rtol=0, atol=1e-10)
        torch.testing.assert_close(b.grad, lin.bias.grad, rtol=0, atol=1e-10)
    torch.testing.assert_close(x2.grad, x1.grad, rtol=0, atol=1e-10)


def test_scratch_bias_gradient_is_summed_over_the_batch():
    """The course's code sets dJ/db_h = delta1 (one row per sample); the shared bias needs the sum over samples."""
    torch.manual_seed(0)
    net = ScratchMLP(2, 1, [5], "sigmoid").double()
    x = torch.tensor([[0.0, 1], [1, 0], [1, 1], [0, 0]], dtype=torch.float64)
    y = torch.tensor([[1.0], [1], [0], [0]], dtype=torch.float64)
    scratch_cost(net(x), y, "sum_mse", "sigmoid").backward()
    assert net.biases[0].grad.shape == (5,)
    # finite-difference check of one bias entry
    eps = 1e-6
    with torch.no_grad():
        net.biases[0][2] += eps
        up = scratch_cost(net(x), y, "sum_mse", "sigmoid")
        net.biases[0][2] -= 2 * eps
        down = scratch_cost(net(x), y, "sum_mse", "sigmoid")
    assert abs((up - down).item() / (2 * eps) - net.biases[0].grad[2].item()) < 1e-7


def test_unknown_net_options_are_one_line_errors():
    from dlf.errors import DlfError

    with pytest.raises(DlfError, match="activation='softplus'"):
        build_mlp(2, 1, activation="softplus")
    with pytest.raises(DlfError, match="impl='numpy'"):
        build_mlp(2, 1, impl="numpy")
    with pytest.raises(DlfError, match="hidden"):
        build_mlp(2, 1, hidden=[0])


class KeepNet(L.Callback):
    """Saves the trained net (the system's `net`, whole) to `path` at the end of training."""

    def __init__(self, path: str):
        self.path = path

    def on_train_end(self, trainer, pl_module):
        torch.save(pl_module.net, self.path)


class SolvesXor(L.Callback):
    """Writes whether the trained model solves XOR (every output within the margin of its target) to `path`."""

    def __init__(self, path: str):
        self.path = path

    def on_train_end(self, trainer, pl_module):
        Path(self.path).write_text(str(_solves_xor(pl_module)))


def _final_weights(tmp_path, impl, make_cfg):
    cfg = make_cfg([f"model.net.impl={impl}", "trainer.precision=64-true", "logger=none", "test=false",
                    "trainer.max_epochs=2", "data.repeats=20", "optimizer=momentum"], tmp_path, fast=False)
    with open_dict(cfg):
        cfg.callbacks.model_checkpoint = None
        cfg.callbacks.step_checkpoint = None
        cfg.trainer.enable_checkpointing = False
        cfg.callbacks.keep_net = {"_target_": f"{__name__}.KeepNet", "path": str(tmp_path / "net.pt")}
    run(cfg)
    return torch.load(tmp_path / "net.pt", weights_only=False)


def test_scratch_and_torch_training_runs_give_the_same_weights(tmp_path, make_cfg):
    a = _final_weights(tmp_path / "torch", "torch", make_cfg)
    b = _final_weights(tmp_path / "scratch", "scratch", make_cfg)
    assert isinstance(a, TorchMLP) and isinstance(b, ScratchMLP)
    for lin, w, bias in zip(a.linears, b.weights, b.biases):
        assert not torch.equal(lin.weight.T, torch.zeros_like(w))
        torch.testing.assert_close(w, lin.weight.T, rtol=0, atol=1e-10)
        torch.testing.assert_close(bias, lin.bias, rtol=0, atol=1e-10)


def _solves_xor(model, margin=0.25) -> bool:
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
    with torch.no_grad():
        return bool(((model(x) - y).abs() < 0.5 - margin).all())


def test_default_model_solves_xor_on_19_of_20_seeds(tmp_path, make_cfg):
    """python train.py model=mlp_xor (defaults) — all four outputs within 0.25 of their target, for >= 19 of 20 seeds."""
    for seed in range(20):
        cfg = make_cfg([f"seed={seed}", "logger=none", "test=false"], tmp_path / str(seed), fast=False)
        with open_dict(cfg):
            for k in ("model_checkpoint", "step_checkpoint", "cost_curve", "decision_boundary"):
                cfg.callbacks[k] = None
            cfg.callbacks.solves_xor = {"_target_": f"{__name__}.SolvesXor", "path": str(tmp_path / f"{seed}.txt")}
            cfg.trainer.enable_checkpointing = False
        run(cfg)
    results = [(tmp_path / f"{seed}.txt").read_text() == "True" for seed in range(20)]
    assert sum(results) >= 19, f"solved {sum(results)}/20 seeds"


def test_course_exercise_runs_as_configured(tmp_path, make_cfg):
    """experiment=xor_seed is the course's exact set-up; with correctly shared biases alpha=0.01 for 10,000 steps
    leaves the outputs near 0.5 (it does not solve XOR) — see the README."""
    cfg = make_cfg(["experiment=xor_seed", "logger=none", "test=false"], tmp_path, fast=False)
    assert cfg.optimizer.lr == 0.01 and cfg.optimizer._target_ == "torch.optim.SGD" and cfg.optimizer.momentum == 0
    assert cfg.model.cost == "sum_mse" and cfg.model.net.init == "normal" and list(cfg.model.net.hidden) == [5]
    assert cfg.trainer.max_epochs * cfg.data.repeats == 10_000


@pytest.mark.parametrize("init", ["normal", "default"])
def test_one_seed_gives_both_twins_the_same_start(init):
    torch.manual_seed(3)
    a = TorchMLP(3, 2, [4, 5], "tanh", init=init)
    torch.manual_seed(3)
    b = ScratchMLP(3, 2, [4, 5], "tanh", init=init)
    for lin, w, bias in zip(a.linears, b.weights, b.biases):
        assert torch.equal(w, lin.weight.T) and torch.equal(bias, lin.bias)
