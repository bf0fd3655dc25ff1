"""Shared test fixtures: `make_cfg` (compose a config with Hydra's compose API, for an in-process `dlf.run.train.run`),
`run_cli` (the CLI in a subprocess), `root` (this checkout) and `data_cache`. Tests ask for them by name; nothing
imports this file (helpers a fixture does not fit live in importable modules such as tests/cli_server.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from dlf.run.train import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(min(2, torch.get_num_threads()))


def _make_cfg(overrides: list[str], tmp_path: Path, fast: bool = True) -> DictConfig:
    """Compose dlf/configs/train.yaml with `overrides`; everything the run writes goes under tmp_path.

    fast=True adds debug=fast-like limits unless the overrides set trainer keys themselves.
    """
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
        cfg.paths.data_dir = str(tmp_path.parent / "data_cache")  # shared by the tests of one session
        cfg.paths.log_dir = str(tmp_path / "logs")
        cfg.trainer.enable_progress_bar = False
        cfg.trainer.enable_model_summary = False
        if cfg.get("callbacks") and "model_summary" in cfg.callbacks:
            cfg.callbacks.model_summary = None
        if fast:
            cfg.trainer.max_epochs = 1
            cfg.trainer.limit_train_batches = 3
            cfg.trainer.limit_val_batches = 2
            cfg.trainer.limit_test_batches = 2
    return cfg


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data_cache")


def _run_cli(args: list[str], cwd: Path, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python train.py <args>` in a subprocess, logs under cwd (DLF_ROOT)."""
    e = dict(os.environ)
    e.pop("HYDRA_FULL_ERROR", None)
    e["DLF_ROOT"] = str(cwd)
    # this checkout's code, whatever is installed (absolute: the subprocess runs in cwd)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [e.get("PYTHONPATH")])])
    if env:
        e.update(env)
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def make_cfg():
    """make_cfg(overrides, tmp_path, fast=True) -> DictConfig: train.yaml composed with `overrides`, writing under
    tmp_path; fast=True adds debug=fast-like limits (see _make_cfg)."""
    return _make_cfg


@pytest.fixture(scope="session")
def run_cli():
    """run_cli(args, cwd, timeout=300, env=None) -> CompletedProcess: `python train.py <args>` as a user runs it."""
    return _run_cli


@pytest.fixture(scope="session")
def root() -> Path:
    """This checkout's root folder (train.py, src/, scripts/, tests/)."""
    return ROOT


@pytest.fixture
def fitted_trainers(monkeypatch) -> list:
    """The Trainers that `L.Trainer.fit` runs during the test, in order (fit itself is unchanged): what dlf.run.train.run
    built, to inspect after it returns."""
    import lightning as L

    trainers, fit = [], L.Trainer.fit

    def recording_fit(trainer, *args, **kwargs):
        trainers.append(trainer)
        return fit(trainer, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "fit", recording_fit)
    return trainers


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The local one-node Slurm cluster (scripts/slurm_local.sh): brought up if it is not up (root and apt needed;
    else the test skips, and fails under CI=true), torn down at the end of the session if this fixture started it."""
    script = ROOT / "scripts" / "slurm_local.sh"
    if subprocess.run([str(script), "status"], capture_output=True).returncode == 0:
        yield "up before the tests"
        return
    if os.geteuid() != 0:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(
            "no Slurm cluster up and not root: run scripts/services.sh up as root first")
    r = subprocess.run([str(script), "up"], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(
            f"the local Slurm cluster did not come up: {(r.stderr or r.stdout).strip()}")
    try:
        yield "started by the tests"
    finally:
        subprocess.run([str(script), "down"], capture_output=True, timeout=300)
