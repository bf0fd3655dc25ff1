"""The training-health callback (dlf.callbacks.health): every family's run shows the three views (saturation and
activation histograms, gradient norms and histograms, update:data ratios; the GAN's G and D apart, and D's output on
real and fake) in TensorBoard and plots/, with one summary line; the lecture's three claims on real runs
(scripts/health_lecture.py, the figure of docs/health.md); off means off; hooks are gone when fit ends."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from cli_server import DATA_CACHE, shared_server
from torch import nn

from dlf.callbacks.health import TAGS, Health, layout, saturation

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["trainer=cpu", "trainer.enable_progress_bar=false", "callbacks.model_summary=null", "test=false",
         f"paths.data_dir={DATA_CACHE}"]
# family -> a run of a few steps, health measured every 2 optimizer steps
FAMILIES = {
    "mlp_xor": ["model=mlp_xor", "trainer.max_epochs=1"],
    "mlp_scratch": ["model=mlp", "model.net.impl=scratch", "model.net.activation=tanh", "trainer.max_steps=6",
                    "trainer.limit_val_batches=1"],
    "cnn1d": ["model=cnn1d", "trainer.max_steps=6", "trainer.limit_val_batches=1", "callbacks.cnn_figures=null"],
    "lstm": ["model=lstm", "data=adding", "data.seq_len=20", "model.net.hidden_size=16", "trainer.max_steps=6",
             "trainer.limit_val_batches=1"],
    "rnn_scratch": ["model=rnn", "model.net.impl=scratch", "model.net.hidden_size=16", "trainer.max_steps=6",
                    "trainer.limit_val_batches=1"],
    "gan": ["model=gan", "trainer.max_epochs=1", "trainer.limit_train_batches=6", "trainer.limit_val_batches=1"],
}


def _events(run_dir: Path):
    from tensorboard.backend.event_processing import event_accumulator as ea

    events = sorted(run_dir.rglob("events.out.tfevents.*"))
    assert len(events) == 1, events
    acc = ea.EventAccumulator(str(events[0].parent), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.IMAGES: 0})
    acc.Reload()
    return acc.Tags()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_shows_health(family, tmp_path):
    r = shared_server().run([*FAMILIES[family], *QUIET, "callbacks.health.every_n_steps=2",
                             f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    tags = _events(tmp_path / "run")
    scalars, hists = set(tags["scalars"]), set(tags["histograms"])
    health = {t for t in scalars if t.startswith("health/")}
    quantities = {t.split("/")[1] for t in health}
    views = {"grad_norm", "update_ratio"} | ({"saturation"} if family != "mlp_scratch" else set())
    assert views <= quantities, sorted(health)
    assert {t.split("/")[1] for t in hists if t.startswith("health/")} == (
        {"gradients", "activations"} if "saturation" in views else {"gradients"})
    for t in health:  # every health scalar falls in one chart of the layout: one chart per quantity
        assert sum(bool(re.fullmatch(rx, t)) for rx in TAGS.values()) == 1, t
    plots = {p.name for p in (tmp_path / "run" / "plots").glob("health_*.png")}
    assert {"health_gradients.png", "health_updates.png"} <= plots
    assert ("health_activations.png" in plots) == ("saturation" in views)
    lines = [x for x in r.stdout.splitlines() if x.startswith("health (")]
    assert len(lines) == 1 and "update:data" in lines[0], r.stdout[-2000:]
    if family == "mlp_scratch":  # a from-scratch twin has no activation modules: no saturation to show, said plainly
        assert "saturation" not in lines[0]
    if family == "lstm":  # the recurrent net's h_t, its gates' and the head's weights
        assert "health/saturation/net" in health and "health/grad_norm/head" in health
        assert any(t.startswith("health/grad_norm/net.lstm.weight_hh_l0") for t in health)
    if family == "gan":
        assert {"health/gan/d_real", "health/gan/d_fake", "plots/health_gan"} <= scalars | set(tags["images"])
        assert "health_gan.png" in plots and "D(x) on real" in lines[0]
        per_net = layout(("G", "D"))["health"]
        for net in ("G", "D"):
            assert any(t.startswith(f"health/saturation/{net}.") for t in health)
            mine = [t for t in health if re.fullmatch(per_net[f"update_ratio ({net})"][1][0], t)]
            assert mine and all(t.startswith(f"health/update_ratio/{net}.") for t in mine)
            assert f"{net}: saturation" in lines[0] and f"{net}: update:data" in lines[0]


@pytest.mark.parametrize("off", ["callbacks.health=null", "callbacks.health.enabled=false",
                                 "callbacks.health.every_n_steps=0"])
def test_off_shows_nothing(off, tmp_path):
    r = shared_server().run([*FAMILIES["mlp_xor"], *QUIET, off, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    tags = _events(tmp_path / "run")
    assert not [t for t in tags["scalars"] + tags["histograms"] + tags["images"] if "health" in t]
    assert not list((tmp_path / "run" / "plots").glob("health_*")) and "health (" not in r.stdout


def test_off_costs_no_hook():
    """Disabled, Lightning calls none of its batch hooks (it skips a None hook)."""
    cb = Health(enabled=False)
    assert cb.on_train_batch_start is None and cb.on_train_batch_end is None and cb.on_before_optimizer_step is None
    assert Health(every_n_steps=0).on_train_batch_start is None and callable(Health().on_train_batch_start)
    assert Health().on_train_batch_end is None  # on: between measurements Lightning calls only the batch start


class _Deep(L.LightningModule):
    """A 4-layer tanh MLP with one shared activation module (as dlf's TorchMLP), trained with SGD."""

    def __init__(self, lr: float):
        super().__init__()
        self.net = nn.ModuleDict({"lin": nn.ModuleList(nn.Linear(8, 8) for _ in range(4)), "act": nn.Tanh()})
        self.lr = lr

    def nets(self):
        return [self.net]

    def forward(self, x):
        for i, lin in enumerate(self.net["lin"]):
            x = lin(x) if i == 3 else self.net["act"](lin(x))
        return x

    def training_step(self, batch, _):
        return self(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def _fit(tmp_path, module, cb, steps=5):
    data = torch.utils.data.TensorDataset(torch.randn(64, 8) * 3)
    trainer = L.Trainer(max_steps=steps, callbacks=cb if isinstance(cb, list) else [cb], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=16))
    return trainer


class _HookCount(L.Callback):
    """The number of module hooks at each training step (after the health callback's batch start)."""

    def __init__(self):
        self.counts = []

    def on_before_backward(self, trainer, pl_module, loss):
        self.counts.append(sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in pl_module.modules()))


def test_hooks_only_in_measured_batches_and_layers_named_by_call(tmp_path):
    module, cb, count = _Deep(lr=0.1), Health(every_n_steps=2), _HookCount()
    _fit(tmp_path, module, [cb, count])
    assert count.counts == [2, 0, 2, 0, 2]  # the shared tanh's hook and the net's pass hook, at steps 0, 2, 4
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())  # none left
    assert sorted(cb.history["saturation"]) == ["net.act[0]", "net.act[1]", "net.act[2]"]  # one shared module
    assert [s for s, _ in cb.history["saturation"]["net.act[0]"]] == [0, 2, 4]  # every 2 steps from the first
    assert sorted(cb.history["grad_norm"]) == [f"net.lin.{i}" for i in range(4)]
    assert len(cb.history["update_ratio"]) == 8  # 4 weights, 4 biases
    assert (tmp_path / "plots" / "health_updates.png").is_file()


def test_compiled_nets_get_no_module_hooks(tmp_path):
    """model.compile=true (compiled: ${model.compile}): no hook inside a compiled forward; gradients and updates stay."""
    module, plain, cb = _Deep(lr=0.1), Health(), Health(every_n_steps=2, compiled=True)
    plain.on_fit_start(L.Trainer(logger=False), module)
    assert len(plain._targets) == 2 and not any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())
    cb.on_fit_start(L.Trainer(logger=False), module)
    assert cb._targets == []
    _fit(tmp_path, module, cb)
    assert "saturation" not in cb.history and cb.history["grad_norm"] and cb.history["update_ratio"]


def test_update_ratio_is_the_step_taken(tmp_path):
    """SGD without momentum: W_after - W_before = -lr * grad, so the ratio moves by exactly log10(100) with lr."""
    ratios = {}
    for lr in (1e-3, 1e-1):
        torch.manual_seed(0)
        cb = Health(every_n_steps=100)
        _fit(tmp_path / str(lr), _Deep(lr=lr), cb, steps=1)
        ratios[lr] = {k: v[0][1] for k, v in cb.history["update_ratio"].items()}
    for name, small in ratios[1e-3].items():
        assert ratios[1e-1][name] - small == pytest.approx(2.0, abs=1e-3), name


def test_saturation_measures():
    a = torch.tensor([[0.99, 0.5], [-0.98, 0.1]])
    assert float(saturation("tanh", [a])) == 0.5
    assert float(saturation("sigmoid", [torch.tensor([[0.02, 0.5, 0.98, 0.96]])])) == 0.5
    relu = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])  # unit 0 never fires over the batch
    assert float(saturation("relu", [relu])) == pytest.approx(1 / 3)
    assert float(saturation("relu", [relu, torch.tensor([[3.0, 0.0, 0.0]])])) == 0.0  # fires on another pass


def test_lecture_claims(tmp_path):
    """Saturation, vanishing gradients and the update:data ratio as the lecture states them, on real runs (and the
    figure docs/health.md shows, drawn from them)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import health_lecture as hl

    hl.DEEP.append(f"paths.data_dir={DATA_CACHE}")
    try:
        results = hl.run_all(tmp_path, run=lambda args, cwd: shared_server().run(args, cwd=cwd))
    finally:
        hl.DEEP.pop()
    n = hl.numbers(results)
    # 1. sigmoid + N(0, 1): most units in the flat tails; ReLU + torch's default init: few dead units
    assert n[f"saturated share, {hl.SIG_N}"] > hl.SATURATED_SHARE > hl.HEALTHY_SHARE > n[f"dead share, {hl.RELU}"]
    assert "saturation TOO HIGH" in results[hl.SIG_N]["summary"]
    # 2. through the deep sigmoid net the gradient vanishes: orders of magnitude from the last layer to the first
    assert n[f"first/last grad norm, {hl.SIG_D}"] < hl.VANISHED < n[f"first/last grad norm, {hl.RELU}"]
    assert "gradient flow VANISHING: net.linears.0" in results[hl.SIG_D]["summary"]
    # 3. the update:data ratio follows the rate: far above -3 at 100x, far below at 1/100
    assert n[f"update ratio, {hl.BIG}"] > -3 + hl.FAR and n[f"update ratio, {hl.SMALL}"] < -3 - hl.FAR
    assert -4 < n[f"update ratio, {hl.RELU}"] < -2
    assert "update:data TOO LARGE" in results[hl.BIG]["summary"]
    assert "update:data TOO SMALL" in results[hl.SMALL]["summary"]
    hl.figure(results, tmp_path / "health_lecture.png")
    assert (tmp_path / "health_lecture.png").stat().st_size > 10_000


def test_bench_health_runs(tmp_path):
    """scripts/bench_health.py (docs/health.md's cost table) on one workload, one round."""
    import subprocess

    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_health.py"), "xor", "--repeats", "1",
                        "--measurements", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert re.search(r"xor: 106 steps x 1 rounds; .* on/off median \d\.\d+, mean .* \d\.\d+", r.stdout), r.stdout


def test_health_charts_join_the_runs_custom_scalars_layout():
    """dlf.callbacks.layout registers the health section (a chart per quantity, a line per layer; the GAN's G and D
    apart) when the run measures health, and none when it does not."""
    from types import SimpleNamespace

    from dlf.callbacks.health import Health
    from dlf.callbacks.layout import _health_section

    on = SimpleNamespace(callbacks=[Health(every_n_steps=100)])
    assert sorted(_health_section(on, "mlp")["health"]) == ["d_output", "grad_norm", "saturation", "update_ratio"]
    gan = _health_section(on, "gan")["health"]
    assert "saturation (G)" in gan and "saturation (D)" in gan and gan["saturation (G)"][1] == [r"health/saturation/G\..*"]
    assert _health_section(SimpleNamespace(callbacks=[Health(enabled=False)]), "mlp") == {}
    assert _health_section(SimpleNamespace(callbacks=[]), "mlp") == {}
