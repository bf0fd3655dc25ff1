"""Learning-rate schedules beyond `linear`: `scheduler=cosine` (a linear warm-up, then a cosine decay) and
`scheduler=plateau` (torch's ReduceLROnPlateau on `monitor`), with every optimizer and with the GAN's two optimizers,
and resumable bit-identically: killed and resumed with ckpt_path=last, a run ends with the weights, optimizer and
scheduler states of the run left alone (tests/test_resume.py's runs, kills and checks)."""

from __future__ import annotations

import math

import pytest
import torch
from cli_server import DATA_CACHE, shared_server
from hydra import compose, initialize_config_dir
from test_resume import COMMON as RESUME_COMMON
from test_resume import EXIT, RESUME_MODELS, STEPS_PER_BATCH, _final, _runs, _test_line, assert_same

from dlf.run.train import CONFIG_DIR, options, run
from dlf.systems.schedules import warmup_cosine

SCHEDULES = {"cosine": ["scheduler=cosine", "scheduler.warmup=0.2"],  # 4 of mlp's 21 steps, 8 of the GAN's 42
             "plateau": ["scheduler=plateau", "scheduler.patience=0",  # halve the rate at every validation
                         "scheduler.threshold=10"]}  # after the first: none is 11x better than the best


def _compose(overrides):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def test_the_scheduler_group_lists_the_schedules():
    assert {"none", "linear", "cosine", "plateau"} <= set(options("scheduler"))
    assert not _compose([]).get("scheduler")  # the default run has none: its numbers do not change
    assert _compose(["model=gan", "scheduler=plateau"]).scheduler.mode == "max"  # follows monitor_mode


def test_warmup_cosine_is_the_equation_of_its_docstring():
    """lr_t = lr (f + (1 - f) t / w) for t < w, then eta_min + (lr - eta_min)(1 + cos(pi (t - w) / (T - w))) / 2."""
    lr, T, w, f, eta = 0.1, 20, 4, 0.01, 0.001
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = warmup_cosine(opt, total_iters=T, warmup=w / T, start_factor=f, eta_min=eta)
    for t in range(T + 1):
        want = lr * (f + (1 - f) * t / w) if t < w else eta + (lr - eta) * (1 + math.cos(math.pi * (t - w) / (T - w))) / 2
        assert opt.param_groups[0]["lr"] == pytest.approx(want, rel=1e-9, abs=1e-12), t
        opt.step()
        sched.step()


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adagrad", "rmsprop", "adam"])
def test_every_optimizer_takes_every_schedule(schedule, optimizer, make_cfg, tmp_path, fitted_trainers):
    cfg = make_cfg(["model=mlp", f"optimizer={optimizer}", *SCHEDULES[schedule], "logger=none", "test=false"], tmp_path,
                   fast=False)
    cfg.trainer.max_epochs, cfg.trainer.limit_train_batches, cfg.trainer.limit_val_batches = 3, 4, 1
    run(cfg)
    (trainer,) = fitted_trainers
    (conf,) = trainer.lr_scheduler_configs
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    if schedule == "cosine":  # sized by the run's 12 steps (max_steps is -1), at eta_min at its end
        assert conf.interval == "step" and conf.scheduler.last_epoch == 12 and lr == pytest.approx(0.0, abs=1e-12)
    else:  # one step a validation, on val/acc
        assert (conf.interval, conf.monitor, conf.scheduler.mode, conf.scheduler.last_epoch) == ("epoch", "val/acc",
                                                                                                  "max", 3)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_the_gans_two_optimizers_take_every_schedule(schedule, make_cfg, tmp_path):
    cfg = make_cfg(["model=gan", *SCHEDULES[schedule], "data.batch_size=32", "model.n_eval=100", "logger=none",
                    "callbacks.gan_samples=null", "test=false", "model.d_steps=2"], tmp_path, fast=False)
    cfg.trainer.max_epochs, cfg.trainer.limit_train_batches, cfg.trainer.limit_val_batches = 2, 4, 1
    run(cfg)
    d, g = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["lr_schedulers"]
    if schedule == "cosine":  # D over its 8 steps, G over its 4; both end at eta_min
        assert (d["last_epoch"], g["last_epoch"]) == (8, 4)
        assert d["_schedulers"][1]["T_max"] == 8 - 2 and g["_schedulers"][1]["T_max"] == 4 - 1
        assert d["_last_lr"] == g["_last_lr"] == [0.0]
    else:  # one step a validation, on val/score
        assert (d["last_epoch"], g["last_epoch"], d["mode"]) == (2, 2, "max")


@pytest.mark.parametrize("model", ["mlp", "gan"])
def test_plateau_without_a_monitor_is_refused_in_one_line(model, make_cfg, tmp_path):
    from dlf.errors import DlfError

    cfg = make_cfg([f"model={model}", "scheduler=plateau", "logger=none", "monitor=null"], tmp_path)
    if model == "gan":
        cfg.callbacks.gan_samples = None
    cfg.callbacks.model_checkpoint = None
    with pytest.raises(DlfError, match=r"^scheduler=plateau lowers the rate when `monitor` stops improving, and this "
                                       r"run has no monitor: set monitor=val/loss"):
        run(cfg)


# ---- resumed bit-identically -----------------------------------------------------------------------------------------
KILLS = [("SIGKILL", 10, "batch_start"),  # resumed from the epoch-end last.ckpt of epoch 1 (step 7)
         ("SIGTERM", 5, "batch_end"),      # saved at the batch end, mid-epoch
         ("SIGKILL", 1, "val_end")]        # after epoch 2's validation (a plateau step), before its epoch-end save
CASES = [pytest.param(m, s, *k, id=f"{m}-{s}-{k[0]}-{k[2]}-{k[1]}") for m in ("mlp", "gan") for s in SCHEDULES
         for k in KILLS]
_BASE: dict = {}


def _args(model, schedule):
    return [*RESUME_MODELS[model], *SCHEDULES[schedule], *RESUME_COMMON, f"paths.data_dir={DATA_CACHE}"]


def _baseline(model, schedule, tmp_path_factory):
    if (model, schedule) not in _BASE:
        root = tmp_path_factory.mktemp(f"base_{model}_{schedule}")
        r = shared_server().run(_args(model, schedule), cwd=root)
        assert r.returncode == 0, r.stderr[-3000:]
        (run_dir,) = _runs(root, model)
        final = _final(run_dir)
        lrs = [g["lr"] for o in final["optimizer_states"] for g in o["param_groups"]]
        first = _compose([*RESUME_MODELS[model], *SCHEDULES[schedule]]).optimizer.lr
        assert lrs and all(lr < first for lr in lrs), (schedule, lrs, first)  # the schedule moved every rate
        _BASE[model, schedule] = (final, _test_line(r.stdout))
    return _BASE[model, schedule]


@pytest.mark.parametrize("model,schedule,sig,step,where", CASES)
def test_a_killed_run_with_a_schedule_resumes_exactly(model, schedule, sig, step, where, tmp_path, tmp_path_factory):
    final, test_line = _baseline(model, schedule, tmp_path_factory)
    per_batch = STEPS_PER_BATCH.get(model, 1)
    at = step * per_batch if where != "val_end" else step
    kill = ["+callbacks.kill._target_=killers.KillAt", f"+callbacks.kill.step={at}", f"+callbacks.kill.sig={sig}",
            f"+callbacks.kill.where={where}"]
    r = shared_server().run(_args(model, schedule) + kill, cwd=tmp_path)
    assert r.returncode == EXIT[sig], (r.returncode, r.stderr[-3000:])
    r = shared_server().run(_args(model, schedule) + ["ckpt_path=last"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = _runs(tmp_path, model)
    got = _final(run_dir)
    assert got["global_step"] == final["global_step"]
    for key in ("state_dict", "optimizer_states", "lr_schedulers"):
        assert_same(final[key], got[key], key)
    assert _test_line(r.stdout) == test_line
