"""Speed options through the real CLI: trainer.precision=bf16-mixed and model.compile=true (dlf.run.speed); their one-line
errors where a family cannot take them are in the bad-input catalogue (compile-scratch, bf16-scratch)."""

from __future__ import annotations

import functools

import pytest
from cli_server import shared_server
from omegaconf import OmegaConf

FAST = ["debug=fast", "trainer=cpu"]


def test_bf16_mixed_trains_and_tests(tmp_path):
    """A GAN (manual optimization: two optimizers, manual_backward) and a CNN under bf16-mixed: fit and test run."""
    srv = shared_server()
    for args in (["model=gan", "data.n_train=1024"], ["model=cnn1d"]):
        r = srv.run([*args, *FAST, "trainer.precision=bf16-mixed"], cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "Test: " in r.stdout, r.stdout[-1000:]


def test_compile_key_applies_torch_compile(tmp_path, make_cfg):
    """model.compile=true compiles every net in place (G and D for the GAN); the default leaves them eager."""
    from hydra.utils import instantiate

    from dlf.run.build import build_system, system_config
    from dlf.run.speed import apply

    for model, nets in (("gan", ("G", "D")), ("lstm", ("net", "head"))):
        for flag in (False, True):
            cfg = make_cfg([f"model={model}", f"model.compile={str(flag).lower()}"], tmp_path)
            facts = instantiate(cfg.data).prepare() if model == "gan" else None
            if facts is None:
                from dlf.data.base import DataFacts

                facts = DataFacts(name="s", kind="sequence", target="regression", input_shape=(5, 2), in_features=2)
            system = build_system(cfg, facts)
            assert "compile" not in OmegaConf.to_container(system_config(cfg.model))
            assert [getattr(system, n) for n in nets] == system.nets()  # the system says what it trains
            apply(system, cfg)
            for n in nets:
                assert (getattr(system, n)._compiled_call_impl is not None) == flag, (model, n, flag)


@pytest.mark.slow
def test_compile_through_the_cli(tmp_path):
    """torch.compile really runs (inductor on CPU): an XOR smoke run with model.compile=true fits and tests."""
    r = shared_server().run(["model=mlp_xor", *FAST, "model.compile=true"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Test: " in r.stdout


@pytest.mark.parametrize("kernels", ["foreach_max", "inf_norm"])
def test_guard_finds_a_bad_weight_when_it_checks_and_passes_huge_ones(kernels, monkeypatch):
    """RunGuard's weight check (max |w| over every weight, foreach kernels) stops on a NaN or +-inf weight with a
    finite loss at a step it checks the weights (every WEIGHTS_EVERY steps, every step with several processes, and
    before every checkpoint write), not at the steps between, and lets finite weights near float32's limit pass (no
    overflow to a false alarm); with torch's _foreach_max and, as on a torch without it, with the inf-norm. Both give
    the same max |w|. A non-finite loss stops it at any step; two finite losses whose sum overflows do not."""
    from types import SimpleNamespace

    import torch

    from dlf.callbacks.resilience import RunGuard, max_abs
    from dlf.errors import Diverged

    if kernels == "inf_norm":
        monkeypatch.delattr(torch, "_foreach_max", raising=False)
    tensors = [torch.tensor(-0.5), torch.randn(7, 3), torch.randn(100) * 1e3]
    assert torch.equal(max_abs(tensors), torch.cat([t.reshape(-1) for t in tensors]).abs().max())
    every = RunGuard.WEIGHTS_EVERY

    def trainer(step, world_size=1):
        return SimpleNamespace(global_step=step, world_size=world_size, optimizers=[], callbacks=[], loggers=[],
                               checkpoint_callback=None)

    ok = {"loss": torch.tensor(0.5)}
    for value, bad in ((float("nan"), True), (float("inf"), True), (float("-inf"), True), (3e38, False), (-3e38, False)):
        net = torch.nn.Linear(3, 2)
        with torch.no_grad():
            net.weight[1, 2] = value
        guard = RunGuard()
        guard.on_train_batch_end(trainer(every + 1), net, ok, None, 0)  # a step between weight checks
        for when in ("every", "ddp", "save"):
            t = trainer(2 * every) if when == "every" else trainer(every + 1, world_size=2 if when == "ddp" else 1)
            check = functools.partial(guard.on_save_checkpoint, t, net, {}) if when == "save" else (
                functools.partial(guard.on_train_batch_end, t, net, ok, None, 0))
            if bad:
                with pytest.raises(Diverged, match=f"at step {t.global_step}: weight weight is no longer finite"):
                    check()
            else:
                check()
    with pytest.raises(Diverged, match="the training loss is nan"):
        RunGuard().on_train_batch_end(trainer(3), torch.nn.Linear(2, 2), {"loss": torch.tensor(float("nan"))}, None, 0)
    with pytest.raises(Diverged, match="the training loss is -inf"):
        RunGuard().on_train_batch_end(trainer(3), torch.nn.Linear(2, 2),
                                      {"d_loss": torch.tensor(1.0), "g_loss": torch.tensor(float("-inf"))}, None, 0)
    RunGuard().on_train_batch_end(trainer(3), torch.nn.Linear(2, 2),
                                  {"d_loss": torch.tensor(3e38), "g_loss": torch.tensor(3e38)}, None, 0)


@pytest.mark.parametrize("kind", ["binary", "binary_float_target", "probabilities", "logits", "labels"])
def test_accuracy_counts_what_torchmetrics_computes(kind):
    """dlf.metrics.accuracy.Accuracy (two counts) against its torchmetrics twin, BinaryAccuracy or MulticlassAccuracy
    (average="micro"), over several updates, after a reset, and with outputs exactly at the 0.5 threshold; a binary
    target may come as floats 0.0/1.0 (XOR's y, as the MLP passes it)."""
    import torch
    import torchmetrics

    from dlf.metrics.accuracy import Accuracy

    g = torch.Generator().manual_seed(0)
    if kind.startswith("binary"):
        ours = Accuracy(binary=True)
        twin = torchmetrics.classification.BinaryAccuracy(validate_args=False)
    else:
        ours = Accuracy()
        twin = torchmetrics.classification.MulticlassAccuracy(num_classes=7, average="micro", validate_args=False)
    for _ in range(2):  # the second pass after reset()
        for n in (4, 33, 100):
            if kind.startswith("binary"):
                preds = torch.rand(n, 1, generator=g)
                preds[0] = 0.5  # not above the threshold: class 0 for both
                target = torch.randint(0, 2, (n, 1), generator=g)
            else:
                target = torch.randint(0, 7, (n,), generator=g)
                scores = torch.randn(n, 7, generator=g)
                preds = {"probabilities": scores.softmax(1), "logits": scores, "labels": scores.argmax(1)}[kind]
            ours.update(preds, target.float() if kind == "binary_float_target" else target)
            twin.update(preds, target)
            assert torch.equal(ours.compute(), twin.compute())  # the same float32 value, bit for bit
        assert 0.05 < float(ours.compute()) < 0.8  # random guesses (1/2 or 1/7): real fractions, not 0 or 1
        ours.reset()
        twin.reset()


@pytest.mark.parametrize("metric", ["binary", "classes", "margin", "confusion", "sequence"])
def test_batched_training_updates_give_the_per_step_result(metric):
    """dlf.metrics.queue.UpdateQueue: a metric updated with queued steps concatenated (every `steps` steps, when
    `elements` values are queued, at a change of trailing shape, and at flush) computes exactly what it computes
    updated step by step, through a reset; and it really batches: fewer updates than steps."""
    import torch
    import torchmetrics

    from dlf.metrics.accuracy import Accuracy
    from dlf.metrics.queue import UpdateQueue
    from dlf.metrics.solved import MarginSolved

    make = {"binary": lambda: Accuracy(binary=True), "classes": Accuracy, "margin": MarginSolved,
            "confusion": lambda: torchmetrics.classification.MulticlassConfusionMatrix(5),
            "sequence": Accuracy}[metric]
    g = torch.Generator().manual_seed(1)

    def batch(i):
        n = 7 if i % 4 == 3 else 16  # a short last batch now and then
        if metric in ("binary", "margin"):
            return torch.rand(n, 1, generator=g), torch.randint(0, 2, (n, 1), generator=g).float()
        if metric == "sequence":  # scores per position, [n, 5, T], T changing between batches
            return torch.randn(n, 5, 3 + i // 5, generator=g), torch.randint(0, 5, (n, 3 + i // 5), generator=g)
        scores = torch.randn(n, 5, generator=g)
        return (scores.argmax(1) if metric == "confusion" else scores.softmax(1)), torch.randint(0, 5, (n,), generator=g)

    steps, elements = 6, 300
    batched, direct = make(), make()
    queue = UpdateQueue(batched, steps=steps, elements=elements)
    for _ in range(2):  # the second pass after reset()
        for i in range(23):
            inputs = batch(i)
            queue.add(*inputs)
            direct.update(*inputs)
        queue.flush()
        assert 1 < batched.update_count < direct.update_count == 23
        assert torch.equal(batched.compute(), direct.compute())
        batched.reset()
        direct.reset()
    assert not queue.items


def test_no_profiler_unless_one_is_asked_for(make_cfg, tmp_path):
    """The Trainer's profiler is dlf.run.speed.NoProfiler (one shared no-op context per hook call) unless the config
    names one: +trainer.profiler=simple still profiles."""
    from dlf.run import speed

    profiler = speed.profiler(make_cfg([], tmp_path))
    assert isinstance(profiler, speed.NoProfiler)
    with profiler.profile("[Callback]x.on_train_batch_end") as a, profiler.profile("y") as b:
        assert a is b is None
    assert speed.profiler(make_cfg(["+trainer.profiler=simple"], tmp_path)) == "simple"


def test_a_run_fits_with_no_profiler_and_without_empty_batch_hooks(make_cfg, tmp_path, fitted_trainers):
    """dlf.run.train.run hands the Trainer NoProfiler (SimpleProfiler when asked) and, before fit, sets to None the batch
    hooks the module and callbacks only inherit (RunGuard and LastCheckpoint keep their on_train_batch_end)."""
    from lightning.pytorch.profilers import SimpleProfiler

    from dlf.callbacks.resilience import LastCheckpoint, RunGuard
    from dlf.run import speed
    from dlf.run.train import run

    run(make_cfg(["logger=none"], tmp_path / "plain"))
    run(make_cfg(["logger=none", "+trainer.profiler=simple"], tmp_path / "profiled"))
    plain, profiled = fitted_trainers
    assert isinstance(plain.profiler, speed.NoProfiler) and isinstance(profiled.profiler, SimpleProfiler)
    assert plain.lightning_module.on_before_backward is None and plain.lightning_module.on_train_batch_end is None
    guard = next(c for c in plain.callbacks if isinstance(c, RunGuard))
    last = next(c for c in plain.callbacks if isinstance(c, LastCheckpoint))
    assert guard.on_before_backward is None and guard.on_train_batch_end is not None
    assert last.on_validation_batch_end is None and last.on_train_batch_end is not None
