"""Atomic checkpoints, safe loading (load_system), divergence keeping the last good checkpoint, distinct run dirs for
runs started together, and the data loader's resume state."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch
from cli_server import shared_server

import dlf.run.checkpoint as ck
from dlf.data.base import TensorLoader
from dlf.errors import DlfError

XOR = ["model=mlp_xor", "data.repeats=9", "trainer.max_epochs=2", "logger=none", "trainer=cpu",
       "callbacks.step_checkpoint.every_n_train_steps=2", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def server():
    return shared_server()


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    ck.atomic_save({"state_dict": {"w": torch.ones(3)}}, path)

    def torn(obj, f):  # writes half a checkpoint, then dies (disk full, exception, kill)
        f.write(b"PK\x03\x04" + b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck, "_torch_save", torn)
    with pytest.raises(DlfError, match=rf"could not write {path} \(No space left on device, ENOSPC\); the previous "):
        ck.atomic_save({"state_dict": {"w": torch.zeros(3)}}, path)
    assert torch.equal(ck.read_checkpoint(path)["state_dict"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temp file left behind


def test_sigkill_during_checkpoint_write_keeps_previous_one(server, tmp_path):
    """A real training process is SIGKILLed while writing its 2nd checkpoint: the 1st (step 2) stays whole."""
    r = server.run([*XOR, "+callbacks.kill._target_=killers.KillDuringSave", "+callbacks.kill.n=2"], cwd=tmp_path)
    assert r.returncode == -9, r.stderr[-2000:]
    (run,) = (tmp_path / "logs" / "mlp_xor" / "runs").iterdir()
    ckpt = ck.read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 2
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if p.name != "last.ckpt"]
    assert all(n.startswith(".last.ckpt.") and n.endswith(".tmp") for n in leftovers), leftovers


def test_divergence_keeps_last_good_checkpoint_and_load_system(server, tmp_path):
    r = server.run([*XOR, "+callbacks.poison._target_=killers.PoisonAt", "+callbacks.poison.step=5"], cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("dlf: error: training diverged at step 6:") and "gradient_clip_val" in line
    (run,) = (tmp_path / "logs" / "mlp_xor" / "runs").iterdir()
    last = run / "checkpoints" / "last.ckpt"
    assert str(last) in line
    ckpt = ck.read_checkpoint(last)
    assert ckpt["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
    # load_system rebuilds the system from the run dir's config and loads the weights (weights_only=True)
    system = ck.load_system(last)
    for k, v in ckpt["state_dict"].items():
        assert torch.equal(system.state_dict()[k], v)
    x = torch.tensor([[0.0, 1.0]])
    assert system(x).shape == (1, 1)
    outside = tmp_path / "copy.ckpt"
    outside.write_bytes(last.read_bytes())
    with pytest.raises(DlfError, match="not inside a dlf run dir"):
        ck.load_system(outside)


def test_runs_started_together_get_their_own_dirs(server, tmp_path):
    args = ["model=mlp_xor", "data.repeats=2", "trainer.max_epochs=1", "logger=none", "trainer=cpu", "test=false"]
    results = server.run_together([(args, tmp_path)] * 3, frozen_now="2026-01-01T00:00:00")
    assert all(r.returncode == 0 for r in results), [r.stderr[-1000:] for r in results]
    runs = sorted(p.name for p in (tmp_path / "logs" / "mlp_xor" / "runs").iterdir())
    assert len(runs) == 3, runs
    assert all(name.startswith("2026-01-01_00-00-00_") for name in runs), runs  # the same second, three dirs
    for name in runs:
        assert (tmp_path / "logs" / "mlp_xor" / "runs" / name / "checkpoints" / "last.ckpt").is_file()


def test_tensor_loader_resumes_mid_epoch():
    x = torch.arange(10.0).unsqueeze(1)
    full = TensorLoader((x,), batch_size=3, shuffle=True, seed=7)
    epochs = [[b[0].flatten().tolist() for b in full] for _ in range(2)]
    resumed = TensorLoader((x,), batch_size=3, shuffle=True, seed=7)
    resumed.load_state_dict({"epoch": 1, "batch": 2})  # epoch 1, two batches already trained on
    assert [b[0].flatten().tolist() for b in resumed] == epochs[1][2:]
    nxt = TensorLoader((x,), batch_size=3, shuffle=True, seed=7)
    nxt.load_state_dict({"epoch": 0, "batch": 4})  # a finished epoch: the next one starts from its first batch
    assert [b[0].flatten().tolist() for b in nxt] == epochs[1]
    old = TensorLoader((x,), batch_size=3, shuffle=True, seed=7)
    old.load_state_dict({"epoch": 1})  # the older format: the next epoch to serve
    assert [b[0].flatten().tolist() for b in old] == epochs[1]


def _startup(overrides: list[str], log_dir: Path):
    """Compose as the CLI does (with the hydra node) and run dlf's Startup.on_run_start on it, as Hydra.run does."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from dlf.run.cli import Startup
    from dlf.run.train import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.log_dir={log_dir}/"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.overrides.hydra = [o for o in overrides if o.startswith("hydra.")]
    Startup().on_run_start(config=cfg)
    return cfg


def test_resume_points_hydra_at_the_run_dir(tmp_path, capsys):
    """ckpt_path=last -> the file, and hydra.run.dir -> its run dir (unless given); .hydra/config.yaml is kept and the
    resume's record goes to .hydra/resume-1."""
    from omegaconf import OmegaConf

    run = tmp_path / "logs" / "mlp_xor" / "runs" / "2026-01-01_00-00-00_1"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(["model=mlp_xor"]), run / ".hydra" / "overrides.yaml")
    (run / ".hydra" / "config.yaml").write_text("first: run\n")
    (run / ".hydra" / "resume-1").mkdir()
    from dlf.run.train import CONFIG_DIR

    model = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model" / "mlp_xor.yaml").model, resolve=False)
    ck.atomic_save({"state_dict": {}, "dlf": {"model": model}}, run / "checkpoints" / "last.ckpt")
    cfg = _startup(["model=mlp_xor", "ckpt_path=last"], tmp_path / "logs")
    assert cfg.ckpt_path == str(run.resolve() / "checkpoints" / "last.ckpt")
    assert cfg.hydra.run.dir == str(run.resolve()) and cfg.hydra.output_subdir == ".hydra/resume-2"
    given = _startup(["model=mlp_xor", "ckpt_path=last", "hydra.run.dir=elsewhere"], tmp_path / "logs")
    assert given.hydra.run.dir == "elsewhere" and given.hydra.output_subdir == ".hydra"
    with pytest.raises(SystemExit) as e:  # another model: one line, naming the command that made the checkpoint
        _startup(["model=mlp_xor", "model.net.hidden=[3]", "ckpt_path=last"], tmp_path / "logs")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "does not match this model" in err and "(model=mlp_xor)" in err, err


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    """What a dropout layer or a GAN's noise draws after a resume equals what it would have drawn without one."""
    import random

    import numpy as np

    from dlf.callbacks.resilience import RunGuard

    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    torch.randn(5), np.random.rand(5), random.random()
    ck.atomic_save({"state_dict": {}, "callbacks": {"RunGuard": RunGuard().state_dict()}}, tmp_path / "a.ckpt")
    expected = (torch.randn(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.randn(3))
    torch.manual_seed(9), np.random.seed(9), random.seed(9)  # a fresh process would be seeded from the config
    RunGuard().load_state_dict(ck.read_checkpoint(tmp_path / "a.ckpt")["callbacks"]["RunGuard"])
    got = (torch.randn(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.randn(3))
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2] and np.array_equal(got[3], expected[3])


@pytest.mark.parametrize("given", ["{d}/logs", "{d}/logs/"])
def test_log_dir_with_or_without_its_slash(tmp_path, given):
    """paths.log_dir=<dir> and paths.log_dir=<dir>/ put runs and sweeps in the same place, <dir>/<task>/... (without
    the slash the task name used to be glued to the dir's name: <dir>mlp_xor/runs/...)."""
    from hydra import compose, initialize_config_dir

    from dlf.run.train import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=mlp_xor", f"paths.log_dir={given.format(d=tmp_path)}"],
                      return_hydra_config=True)
    for key in ("run", "sweep"):
        where = Path(cfg.hydra[key].dir)  # <dir>/<task>/runs/<time>_<pid>, <dir>/<task>/multiruns/<time>_<pid>
        assert where.parent.parent == tmp_path / "logs" / "mlp_xor", cfg.hydra[key].dir


def test_run_without_a_best_checkpoint_tests_its_last_weights(tmp_path):
    """callbacks.model_checkpoint=null (keep no best.ckpt; dlf's last.ckpt callback is then the Trainer's checkpoint
    callback): the run tests its final weights and records its last value (it used to end in
    `AttributeError: 'LastCheckpoint' object has no attribute 'best_model_path'`)."""
    import json

    from cli_server import run_train

    r = run_train(["model=mlp_xor", "trainer.max_epochs=2", "callbacks.model_checkpoint=null", "logger=csv",
                   "trainer.enable_progress_bar=false"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Test: test/acc=" in r.stdout
    (res,) = tmp_path.glob("logs/mlp_xor/runs/*/result.json")
    got = json.loads(res.read_text())
    assert got["status"] == "ok" and got["best"] is None and got["last"] is not None
    assert not list(tmp_path.glob("logs/mlp_xor/runs/*/checkpoints/best.ckpt"))
