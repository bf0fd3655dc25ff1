"""Learning rates live with the model: `model.lr_table` and `model.adam_betas`, read by the optimizer files; the GAN's
linear decay is the top-level `scheduler` group. The resolved optimizer of every model x optimizer (and experiment) is
the one dlf gave before the move (tests/data/optimizer_pins_ba4ec7b.json, from `python train.py ... --cfg job
--resolve` at main ba4ec7b)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from dlf.run.train import CONFIG_DIR, options, run

PINS = json.loads((Path(__file__).parent / "data" / "optimizer_pins_ba4ec7b.json").read_text())["optimizer"]


def _compose(overrides: list[str]):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


# Rates changed on purpose since ba4ec7b, each with its results re-measured (README changelog, docs/gan.md):
# case -> the keys that differ from the pin
CHANGED = {
    **{f"model=gan {o}": {"lr": 0.0003} for o in ("optimizer=adam", "scheduler=linear", "scheduler=none")},  # the ring
    "experiment=lstm_adding": {"lr": 0.003},  # the adding problem's time to target (docs/sequence.md)
}


def test_every_model_optimizer_and_experiment_resolves_to_the_same_optimizer_as_before():
    assert len(PINS) == 61
    for case, expected in PINS.items():
        cfg = _compose(case.split())
        assert OmegaConf.to_container(cfg.optimizer, resolve=True) == {**expected, **CHANGED.get(case, {})}, case


@pytest.mark.parametrize("model", options("model"))
def test_no_learning_rate_side_channel_at_the_top_level(model):
    cfg = _compose([f"model={model}"])
    assert "lr_table" not in cfg and "adam_betas" not in cfg
    assert "lr_decay" not in cfg.model
    assert "lr_table" in cfg.model  # each model states its rates (an empty table: the optimizer files' defaults)


def test_the_command_line_rate_wins_and_the_table_is_a_model_key():
    assert _compose(["model=cnn1d", "optimizer=adam", "optimizer.lr=0.3"]).optimizer.lr == 0.3
    assert _compose(["model=lstm", "model.lr_table.adam=0.02"]).optimizer.lr == 0.02
    assert list(_compose(["model=mlp", "+model.adam_betas=[0.8,0.9]"]).optimizer.betas) == [0.8, 0.9]


def test_gan_decays_through_the_scheduler_group():
    assert _compose(["model=gan"]).scheduler._target_ == "torch.optim.lr_scheduler.LinearLR"
    assert _compose(["experiment=gan_grid"]).scheduler._target_ == "torch.optim.lr_scheduler.LinearLR"
    assert not _compose(["model=gan", "scheduler=none"]).get("scheduler")


def test_the_gan_reads_no_partials_keywords():
    gan = Path(__file__).resolve().parents[1] / "src" / "dlf" / "systems" / "gan.py"
    assert "keywords" not in gan.read_text() and "lr_decay" not in gan.read_text()


@pytest.mark.parametrize("d_steps", [1, 2])
def test_gan_schedules_end_at_zero_over_each_optimizers_own_steps(d_steps, tmp_path, make_cfg):
    """Both rates decay linearly to exactly 0 at the end of the run, D over its steps and G over its fewer ones."""
    cfg = make_cfg(["model=gan", f"model.d_steps={d_steps}", "data.batch_size=32", "model.n_eval=100", "logger=none",
                    "callbacks.gan_samples=null", "test=false"], tmp_path, fast=False)
    cfg.trainer.max_epochs, cfg.trainer.limit_train_batches, cfg.trainer.limit_val_batches = 2, 4, 1
    run(cfg)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    d, g = ckpt["lr_schedulers"]
    assert (d["total_iters"], g["total_iters"]) == (8, 8 // d_steps)
    assert (d["last_epoch"], g["last_epoch"]) == (8, 8 // d_steps)
    assert all(group["lr"] == 0.0 for o in ckpt["optimizer_states"] for group in o["param_groups"])


def test_a_linear_schedule_in_a_run_sized_in_epochs_spans_the_run(make_cfg, tmp_path, fitted_trainers):
    """scheduler=linear reads trainer.max_steps; at -1 (the run sized by max_epochs) it spans max_epochs x batches and
    ends at a rate of 0 (before: LinearLR(total_iters=-1), which never moved the rate)."""
    cfg = make_cfg(["model=mlp", "scheduler=linear", "logger=none", "test=false"], tmp_path, fast=False)
    cfg.trainer.max_epochs, cfg.trainer.limit_train_batches, cfg.trainer.limit_val_batches = 3, 4, 1
    assert cfg.trainer.max_steps == -1
    run(cfg)
    (trainer,) = fitted_trainers
    sched = trainer.lr_scheduler_configs[0].scheduler
    assert sched.total_iters == 12 == trainer.global_step
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.0
    assert sched.base_lrs == [cfg.optimizer.lr]


@pytest.mark.parametrize(("model", "limit"), [("model=mlp", "trainer.max_steps or trainer.max_epochs"),
                                             ("model=gan", "trainer.max_epochs")])  # max_steps counts D and G steps
def test_a_linear_schedule_needs_a_finite_run(model, limit, make_cfg, tmp_path):
    from dlf.errors import DlfError

    cfg = make_cfg([model, "scheduler=linear", "logger=none"], tmp_path, fast=False)
    cfg.trainer.max_epochs = -1
    with pytest.raises(DlfError, match=f"^a learning-rate schedule needs a finite run: set {limit}$"):
        run(cfg)


def test_lstm_mnist1d_is_the_lstm_with_a_linear_decay_over_18_epochs_of_batches_of_50():
    cfg = _compose(["experiment=lstm_mnist1d"])
    assert (cfg.model.net._target_, cfg.data._target_) == ("dlf.nets.lstm.build_lstm", "dlf.data.mnist1d.MNIST1DDataModule")
    assert (cfg.data.batch_size, cfg.trainer.max_epochs, cfg.trainer.max_steps, cfg.optimizer.lr) == (50, 18, -1, 0.01)
    assert cfg.scheduler._target_ == "torch.optim.lr_scheduler.LinearLR"
