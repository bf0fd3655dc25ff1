"""Speed options through the real CLI: trainer.precision=bf16-mixed and model.compile=true (dlf.speed); their one-line
errors where a family cannot take them are in the bad-input catalogue (compile-scratch, bf16-scratch)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from cli_server import shared_server

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

    from dlf.speed import apply, model_config

    for model, nets in (("gan", ("G", "D")), ("lstm", ("net", "head"))):
        for flag in (False, True):
            cfg = make_cfg([f"model={model}", f"model.compile={str(flag).lower()}"], tmp_path)
            facts = instantiate(cfg.data).prepare() if model == "gan" else None
            if facts is None:
                from dlf.data.base import DataFacts

                facts = DataFacts(name="s", kind="sequence", target="regression", input_shape=(5, 2), in_features=2)
            system = instantiate(model_config(cfg.model), _partial_=True)(facts=facts)
            assert "compile" not in OmegaConf.to_container(model_config(cfg.model))
            apply(system, cfg)
            for n in nets:
                assert (getattr(system, n)._compiled_call_impl is not None) == flag, (model, n, flag)


@pytest.mark.slow
def test_compile_through_the_cli(tmp_path):
    """torch.compile really runs (inductor on CPU): an XOR smoke run with model.compile=true fits and tests."""
    r = shared_server().run(["model=mlp_xor", *FAST, "model.compile=true"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Test: " in r.stdout


def test_guard_fused_check_finds_a_bad_weight_and_passes_huge_ones():
    """RunGuard's one-kernel check (max |t| over loss and weights) stops on a NaN or inf weight with a finite loss, as
    the per-tensor check did, and lets finite weights near float32's limit pass (no overflow to a false alarm)."""
    from types import SimpleNamespace

    import torch

    from dlf.callbacks.resilience import RunGuard
    from dlf.errors import Diverged

    trainer = SimpleNamespace(global_step=7, optimizers=[], callbacks=[], checkpoint_callback=None)
    for value, bad in ((float("nan"), True), (float("inf"), True), (3e38, False)):
        net = torch.nn.Linear(3, 2)
        with torch.no_grad():
            net.weight[1, 2] = value
        guard = RunGuard()
        if bad:
            with pytest.raises(Diverged, match="at step 7: weight weight is no longer finite"):
                guard.on_train_batch_end(trainer, net, {"loss": torch.tensor(0.5)}, None, 0)
        else:
            guard.on_train_batch_end(trainer, net, {"loss": torch.tensor(0.5)}, None, 0)
    with pytest.raises(Diverged, match="the training loss is nan"):
        RunGuard().on_train_batch_end(trainer, torch.nn.Linear(2, 2), {"loss": torch.tensor(float("nan"))}, None, 0)
