"""The skeleton: every config option composes, every model x optimizer runs, logs/checkpoints/sweeps land where promised."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from dlf.run.train import CONFIG_DIR, GROUPS, options, run

MODELS = options("model")
OPTIMIZERS = options("optimizer")


def test_optimizer_group_is_complete():
    assert set(OPTIMIZERS) >= {"sgd", "momentum", "adagrad", "rmsprop", "adam"}


@pytest.mark.parametrize("group", [g for g in GROUPS if g not in ("model",)])
def test_every_option_of_every_group_composes(group):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        for name in options(group):
            cfg = compose("train", overrides=[f"{group}={name}"], return_hydra_config=False)
            assert cfg.get(group) is not None or group in ("experiment", "debug", "logger", "scheduler")


@pytest.mark.parametrize("model", MODELS)
def test_model_config_picks_its_natural_dataset_and_explicit_data_wins(model):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        natural = compose("train", overrides=[f"model={model}"])
        assert natural.task_name == model
        other = "digits" if natural.data._target_ != "dlf.data.digits.DigitsDataModule" else "mnist1d"
        explicit = compose("train", overrides=[f"model={model}", f"data={other}"])
    assert explicit.data._target_ != natural.data._target_


def test_model_lr_table_feeds_every_optimizer_and_the_command_line_wins():
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        for opt in OPTIMIZERS:
            cfg = compose("train", overrides=["model=mlp_xor", f"optimizer={opt}"])
            assert cfg.optimizer.lr == cfg.model.lr_table.get(opt, cfg.optimizer.lr)
            partial = instantiate(cfg.optimizer)
            o = partial([torch.nn.Parameter(torch.zeros(1))])
            assert o.param_groups[0]["lr"] == cfg.model.lr_table[opt]
        cfg = compose("train", overrides=["model=mlp_xor", "optimizer=adam", "optimizer.lr=0.3"])
        assert cfg.optimizer.lr == 0.3


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("model", MODELS)
def test_smoke_every_model_with_every_optimizer(model, optimizer, tmp_path, make_cfg):
    cfg = make_cfg([f"model={model}", f"optimizer={optimizer}", "logger=none"], tmp_path)
    metrics = run(cfg)
    losses = {k: v for k, v in metrics.items() if "loss" in k}
    assert losses, f"no loss was logged: {metrics}"
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses


def test_run_writes_events_checkpoints_plots_and_the_loss_decreases(tmp_path, make_cfg):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = make_cfg(["model=mlp_xor", "trainer.max_epochs=4"], tmp_path, fast=False)
    metrics = run(cfg)
    assert metrics["test/acc"] == 1.0
    ev = list(tmp_path.glob("events.out.tfevents.*"))
    assert len(ev) == 1, ev  # one event file, in the run dir itself (fit and test)
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    losses = [e.value for e in acc.Scalars("train/loss")]
    assert len(losses) >= 10 and losses[-1] < 0.5 * losses[0]
    assert {"train/acc", "val/acc", "val/loss", "test/acc"} <= set(acc.Tags()["scalars"])
    assert "epoch" not in acc.Tags()["scalars"]  # Lightning's epoch staircase is not written
    assert {"plots/cost_curve", "plots/decision_boundary"} <= set(acc.Tags()["images"])
    assert (tmp_path / "checkpoints" / "last.ckpt").exists() and (tmp_path / "checkpoints" / "best.ckpt").exists()
    assert (tmp_path / "plots" / "cost_curve.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "decision_boundary.png").stat().st_size > 1000
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 200


def test_resume_from_checkpoint_continues_training(tmp_path, make_cfg):
    cfg = make_cfg(["model=mlp_xor", "trainer.max_epochs=2", "logger=none"], tmp_path / "a", fast=False)
    run(cfg)
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    cfg2 = make_cfg(["model=mlp_xor", "trainer.max_epochs=3", "logger=none", f"ckpt_path={last}"],
                    tmp_path / "b", fast=False)
    run(cfg2)
    ck = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ck["epoch"] == 2 and ck["global_step"] == 150


def test_same_seed_same_metrics_twice(tmp_path, make_cfg):
    def once(d):
        cfg = make_cfg(["model=mlp", "data=moons", "seed=7", "logger=none", "trainer.max_epochs=2",
                        "trainer.deterministic=true"], d, fast=False)
        return run(cfg)

    a, b = once(tmp_path / "a"), once(tmp_path / "b")
    assert a == b
    c = run(make_cfg(["model=mlp", "data=moons", "seed=8", "logger=none", "trainer.max_epochs=2"],
                     tmp_path / "c", fast=False))
    assert c["train/loss"] != a["train/loss"]


def test_cli_trains_prints_predictions_and_run_dir(tmp_path, run_cli):
    r = run_cli(["trainer.max_epochs=3", "trainer.enable_progress_bar=false"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Predictions on the 4 training points" in r.stdout
    assert "Run dir:" in r.stdout
    run_dirs = list((tmp_path / "logs" / "mlp_xor" / "runs").iterdir())
    assert len(run_dirs) == 1
    d = run_dirs[0]
    assert (d / ".hydra" / "config.yaml").exists() and (d / "checkpoints" / "last.ckpt").exists()
    assert any(d.glob("events.out.tfevents.*"))


def test_multirun_sweep_makes_one_run_dir_per_job(tmp_path, run_cli):
    r = run_cli(["-m", "optimizer=sgd,momentum,adam", "debug=fast"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    sweeps = list((tmp_path / "logs" / "mlp_xor" / "multiruns").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir())
    assert jobs == ["0_debug=fast,optimizer=sgd", "1_debug=fast,optimizer=momentum", "2_debug=fast,optimizer=adam"]
    for j in jobs:
        overrides = (sweeps[0] / j / ".hydra" / "overrides.yaml").read_text()
        assert "optimizer=" in overrides


def _err(r) -> str:
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@pytest.mark.parametrize(
    "args, expect",
    [
        (["model=transformer"], "unknown model 'transformer': choose one of"),
        (["data=imagenet"], "unknown data 'imagenet': choose one of"),
        (["optimizer=lbfgs"], "unknown optimizer 'lbfgs': choose one of"),
        (["model.cost=???"], "missing required value 'model.cost'"),
        (["optimizer.lr=0"], "optimizer.lr=0.0 must be a positive number"),
        (["optimizer.lr=-0.1"], "optimizer.lr=-0.1 must be a positive number"),
        (["model=mlp", "data.batch_size=0"], "data.batch_size=0 must be a positive integer"),
        (["trainer=gpu"], "trainer=gpu asks for a CUDA GPU but none is visible"),
    ],
    ids=["model", "data", "optimizer", "missing", "lr0", "lrneg", "batch", "gpu"],
)
def test_bad_input_gives_one_clear_line(args, expect, tmp_path, run_cli):
    if "trainer=gpu" in args and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = run_cli(args, cwd=tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert _err(r).startswith("dlf: error: ") and expect in _err(r), r.stderr[-1500:]
    assert not (tmp_path / "logs").exists() or not any(Path(tmp_path / "logs").rglob("*.ckpt"))
