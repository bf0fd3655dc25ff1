"""Start-up (issue 30): what a small run spends above `import torch, lightning`, and tools that refuse bad input
before importing torch. Timing itself lives in scripts/startup.py (a measurement, not a test); these tests hold the
behaviour the cut rests on: Hydra composes once (dlf.hydra_internals), debug=fast draws no figures (figures=false),
the tools answer a bad input without torch, and a run too short to validate still draws and says why no best.ckpt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_server import ROOT, cli_env, shared_server
from omegaconf import OmegaConf

from dlf.hydra_internals import mode_is_on_command_line

XOR = ["model=mlp_xor", "trainer=cpu"]


# ---- Hydra composes once --------------------------------------------------------------------------------------------
def test_no_dlf_config_sets_hydra_mode():
    """skip_mode_compose answers Hydra's get_mode from the command line: sound only while no config of dlf's tree
    chooses the mode itself."""
    for path in sorted((ROOT / "src" / "dlf" / "configs").rglob("*.yaml")):
        cfg = OmegaConf.load(path)
        in_hydra_group = path.parent.name == "hydra" or "hydra" in path.relative_to(ROOT / "src" / "dlf" / "configs").parts[:1]
        node = cfg if in_hydra_group else (cfg.get("hydra") or {})
        assert "mode" not in node, f"{path} sets hydra.mode: dlf.hydra_internals.skip_mode_compose would ignore it"


@pytest.mark.parametrize("overrides,argv,decided", [
    (["debug=fast"], ["debug=fast"], True),
    (["hydra.mode=MULTIRUN"], ["hydra.mode=MULTIRUN"], False),
    (["+hydra.searchpath=[pkg://x]"], [], False),
    (["seed=1"], ["--config-dir", "my_configs", "seed=1"], False),
    (["seed=1"], ["-cd=my_configs", "seed=1"], False),
    (["optimizer.lr=0.1,0.2"], ["-m", "optimizer.lr=0.1,0.2"], True),
])
def test_mode_is_on_command_line(overrides, argv, decided):
    assert mode_is_on_command_line(overrides, argv) is decided


def test_hydra_mode_override_still_runs_a_multirun(tmp_path):
    """`hydra.mode=MULTIRUN` without -m: Hydra's own get_mode still decides (a sweep dir with job 0)."""
    r = shared_server().run([*XOR, "debug=fast", "hydra.mode=MULTIRUN", "hydra.sweep.dir=sweep"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "sweep" / "0_debug=fast,model=mlp_xor,trainer=cpu" / "result.json").is_file()


def test_get_mode_is_restored_after_the_run(tmp_path):
    from hydra._internal.hydra import Hydra

    from dlf.hydra_internals import skip_mode_compose

    original = Hydra.get_mode
    with skip_mode_compose():
        assert Hydra.get_mode is not original
    assert Hydra.get_mode is original


# ---- debug=fast draws nothing; figures=true brings the figures back -----------------------------------------------
def test_debug_fast_draws_no_figures_and_figures_true_does(tmp_path):
    server = shared_server()
    r = server.run([*XOR, "debug=fast", "hydra.run.dir=fast"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "fast" / "plots").exists()
    assert json.loads((tmp_path / "fast" / "result.json").read_text())["status"] == "ok"
    r = server.run([*XOR, "debug=fast", "figures=true", "hydra.run.dir=drawn"], tmp_path)
    assert r.returncode == 0, r.stderr
    drawn = {p.name for p in (tmp_path / "drawn" / "plots").iterdir()}
    assert {"cost_curve.png", "decision_boundary.png", "health_updates.png"} <= drawn, drawn
    assert "Predictions on the 4 training points" in r.stdout


def test_figures_must_be_a_bool(tmp_path):
    r = shared_server().run([*XOR, "figures=maybe"], tmp_path)
    assert r.returncode == 2
    assert "figures='maybe'" in r.stderr and "Traceback" not in r.stderr


# ---- a run too short to validate ----------------------------------------------------------------------------------
def test_run_too_short_to_validate_draws_and_says_why_no_best(tmp_path):
    """model=gan trainer.max_steps=20 (10 batches, an epoch has 1000): no validation, so no best.ckpt: the run says
    why in one line (not Lightning's ModelCheckpoint hint), still draws its samples, tests its final weights."""
    r = shared_server().run(["model=gan", "trainer=cpu", "logger=none", "trainer.max_steps=20", "hydra.run.dir=run"],
                            tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "No checkpoints/best.ckpt: val/score is measured at validation" in out
    assert "stopped after 10 (trainer.max_steps=20)" in out
    assert "could not find the monitored key" not in out
    run = tmp_path / "run"
    assert (run / "plots" / "samples_final.png").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / "checkpoints" / "best.ckpt").exists()
    result = json.loads((run / "result.json").read_text())
    assert result["best"] is None and result["batches"] == 10 and "test/score" in result["test"]


def test_a_run_that_validates_does_not_say_it(tmp_path):
    r = shared_server().run([*XOR, "data.repeats=3", "trainer.max_epochs=1", "logger=none", "hydra.run.dir=run"],
                            tmp_path)
    assert r.returncode == 0, r.stderr
    assert "No checkpoints/best.ckpt" not in r.stdout + r.stderr
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()


# ---- tools refuse bad input before importing torch ----------------------------------------------------------------
def _fake_run(root: Path, data_target: str, model_target: str) -> Path:
    """A run dir as dlf writes it, as far as the tools' first checks read: .hydra/config.yaml and a checkpoint file
    (its bytes are never read: the refusal comes first)."""
    (root / ".hydra").mkdir(parents=True)
    (root / ".hydra" / "config.yaml").write_text(
        f"model:\n  _target_: {model_target}\ndata:\n  _target_: {data_target}\npaths:\n  output_dir: x\n")
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "last.ckpt").write_bytes(b"not read")
    return root


def _tool(name: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The installed console script as a user runs it, with Python's import log on (PYTHONPROFILEIMPORTTIME)."""
    exe = Path(sys.executable).with_name(name)
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", f"import sys; from dlf.tools.{name[4:]} import "
                                                                  f"{'cli' if name == 'dlf-sample' else 'main'} as m; m()"]
    env = {**cli_env(cwd), "PYTHONPROFILEIMPORTTIME": "1"}
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("name,args,expect", [
    ("dlf-sample", ["missing_run"], "missing_run does not exist"),
    ("dlf-sample", ["xor_run"], "not a language model"),
    ("dlf-sample", ["text_run", "--prompt="], "--prompt must not be empty"),
    ("dlf-sample", ["text_run", "--temperature=-1"], "--temperature=-1.0 must be >= 0"),
    ("dlf-sample", ["no_checkpoint_run"], "no checkpoints/best.ckpt or last.ckpt"),
    ("dlf-generate", ["missing_run"], "missing_run does not exist"),
    ("dlf-generate", ["xor_run"], "not a GAN"),
    ("dlf-generate", ["gan_run", "-n", "0"], "-n 0 must be a positive number"),
    ("dlf-generate", ["gan_run", "--ckpt", "nope.ckpt"], "checkpoint nope.ckpt not found"),
    ("dlf-compare", ["missing_sweep"], "missing_sweep is not a directory"),
])
def test_tools_refuse_bad_input_without_torch(name, args, expect, tmp_path):
    _fake_run(tmp_path / "xor_run", "dlf.data.toy.XORDataModule", "dlf.systems.mlp.MLPSystem")
    _fake_run(tmp_path / "text_run", "dlf.data.text.TextDataModule", "dlf.systems.sequence.SequenceSystem")
    _fake_run(tmp_path / "gan_run", "dlf.data.mixtures.RingDataModule", "dlf.systems.gan.GANSystem")
    (tmp_path / "no_checkpoint_run" / ".hydra").mkdir(parents=True)
    (tmp_path / "no_checkpoint_run" / ".hydra" / "config.yaml").write_text("data: {}\n")
    r = _tool(name, args, tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    errors = [line for line in r.stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and expect in errors[0], errors
    imported = _imported(r.stderr)
    assert "dlf" in imported and "torch" not in imported and "lightning" not in imported


def test_startup_script_measures(tmp_path):
    """scripts/startup.py, one round: the floor and this clone's debug=fast run, and the difference."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "startup.py"), "--runs", "1"], capture_output=True,
                       text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert r.returncode == 0, r.stderr
    assert "floor  python -c 'import torch, lightning'" in r.stdout and "above the floor" in r.stdout
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "startup.py"), "--against", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "has no train.py" in r.stderr
