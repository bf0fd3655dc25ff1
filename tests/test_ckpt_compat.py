"""Checkpoints written by an earlier dlf keep working: each family's small run dir in tests/data/ckpt_v0_1/ (made by the
commands in its README, with the code of the commit that added it) is evaluated (`train=false ckpt_path=<file>`),
resumed for one more epoch (`ckpt_path=<file>`), and sampled from (`dlf-sample`, `dlf-generate`) by today's code.
A change that cannot keep a checkpoint loading must say so in one line naming the key, and in the README's changelog."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from cli_server import DATA_CACHE, ROOT, shared_server
from omegaconf import OmegaConf

V0_1 = ROOT / "tests" / "data" / "ckpt_v0_1"
FAMILIES = ["mlp_xor", "mlp", "rnn", "lstm", "cnn", "gan"]


@pytest.fixture(scope="module")
def server():
    return shared_server()


def _copy(family: str, tmp_path: Path) -> Path:
    """A copy of the stored run dir (a resumed run writes into its own run dir; the test data stays untouched)."""
    run = tmp_path / "run"
    shutil.copytree(V0_1 / family, run)
    return run


def _command(run: Path, epochs: int | None = None) -> list[str]:
    """The command that made the run (its .hydra/overrides.yaml), optionally with another trainer.max_epochs."""
    old = [str(o) for o in OmegaConf.load(run / ".hydra" / "overrides.yaml")]
    if epochs is not None:
        old = [o for o in old if not o.startswith("trainer.max_epochs=")] + [f"trainer.max_epochs={epochs}"]
    return [*old, f"paths.data_dir={DATA_CACHE}"]


def test_stored_checkpoints_are_small():
    files = [p for p in V0_1.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 2_000_000
    for family in FAMILIES:
        assert (V0_1 / family / ".hydra" / "config.yaml").is_file()
        assert (V0_1 / family / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("family", FAMILIES)
def test_old_checkpoint_evaluates(family, server, tmp_path):
    run = _copy(family, tmp_path)
    ckpt = run / "checkpoints" / "last.ckpt"
    r = server.run([*_command(run), "train=false", f"ckpt_path={ckpt}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Test: test/" in r.stdout


@pytest.mark.parametrize("family", FAMILIES)
def test_old_checkpoint_resumes_one_more_epoch(family, server, tmp_path):
    run = _copy(family, tmp_path)
    ckpt = run / "checkpoints" / "last.ckpt"
    before = torch.load(ckpt, weights_only=True)
    epochs = before["epoch"] + 2  # the stored run ended after `epoch + 1` epochs
    r = server.run([*_command(run, epochs), f"ckpt_path={ckpt}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"Run dir: {run}" in r.stdout.replace(str(run.resolve()), str(run))  # resumed in its own run dir
    after = torch.load(ckpt, weights_only=True)
    assert after["global_step"] > before["global_step"]
    assert after["epoch"] == before["epoch"] + 1
    for b, a in zip(before["optimizer_states"], after["optimizer_states"], strict=True):  # each optimizer stepped on
        assert _steps(a) > _steps(b)
    rates = [g["lr"] for o in before["optimizer_states"] for g in o["param_groups"]]
    if any(rates):  # (the GAN's linear decay had reached lr 0 at the stored run's end: its weights rightly stay put)
        changed = [k for k, v in before["state_dict"].items() if not torch.equal(v, after["state_dict"][k])]
        assert changed, "one more epoch of training changed no weight"


def _steps(optimizer_state: dict) -> float:
    """The optimizer's own step count (Adam-family state), else the number of parameters with state."""
    steps = [float(s["step"]) for s in optimizer_state["state"].values() if "step" in s]
    return max(steps) if steps else float(len(optimizer_state["state"]))


def test_old_language_model_samples(tmp_path, capsys):
    from dlf.tools import sample

    run = _copy("lstm", tmp_path)
    assert sample.main([str(run), "--prompt", "The", "--length", "20"]) == 0
    assert "Sample (temperature" in capsys.readouterr().out


def test_old_gan_generates(tmp_path, monkeypatch):
    from dlf.tools import generate

    monkeypatch.setenv("DLF_ROOT", str(tmp_path))  # the saved config's data dir
    run = _copy("gan", tmp_path)
    generate.main([str(run), "-n", "16", "-o", str(tmp_path / "out")])
    assert len((tmp_path / "out" / "samples.csv").read_text().splitlines()) == 17  # header + 16 points
