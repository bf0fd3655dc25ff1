"""The entry point (dlf.train): what the task returns and records (result.json), and how a sweep with a failed job ends."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

from cli_server import run_train
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from dlf.train import CONFIG_DIR

XOR = ["model=mlp_xor", "trainer=cpu", "logger=none", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
       "trainer.enable_model_summary=false", "callbacks.model_summary=null", "callbacks.cost_curve=null"]
KEYS = {"status", "error", "monitor", "mode", "best", "last", "steps", "wall_s", "overrides"}


def _task_in_process(overrides: list[str], out: Path):
    """Call the Hydra task function as Hydra's run_job would: HydraConfig set, the config without its hydra node."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from dlf.train import _task

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out)
        cfg.hydra.mode = RunMode.RUN
        cfg.hydra.job.num = 0
        cfg.paths.log_dir = str(out / "logs")
    HydraConfig.instance().set_config(cfg)
    task_cfg = copy.deepcopy(cfg)
    with open_dict(task_cfg):
        del task_cfg["hydra"]
    return _task(task_cfg)


def test_task_returns_the_best_monitored_value(tmp_path):
    """The value a sweeper optimizes is the checkpoint callback's best `monitor` value, also written to result.json."""
    value = _task_in_process([*XOR, "callbacks.step_checkpoint=null"], tmp_path)
    res = json.loads((tmp_path / "result.json").read_text())
    assert set(res) == KEYS
    assert res["status"] == "ok" and res["error"] is None and res["monitor"] == "val/loss" and res["mode"] == "min"
    assert isinstance(value, float) and value == res["best"] and res["best"] <= res["last"]
    assert res["steps"] > 0 and res["wall_s"] > 0 and "model=mlp_xor" in res["overrides"]


def test_task_without_checkpoint_returns_the_last_value(tmp_path):
    value = _task_in_process([*XOR, "debug=fast"], tmp_path)
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["best"] is None and value == res["last"] and math.isfinite(value)


def test_sweep_goes_on_after_a_failed_job_and_exits_non_zero(tmp_path):
    """Job 0 fails (an unknown activation, found when the model is built): job 1 still runs; the multirun exits 1."""
    r = run_train(["-m", *XOR, "model.net.activation=swish,relu", "hydra.sweep.dir=sweep"], cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    failed = json.loads((tmp_path / "sweep" / "0" / "result.json").read_text())
    ok = json.loads((tmp_path / "sweep" / "1" / "result.json").read_text())
    assert failed["status"] == "failed" and "swish" in failed["error"] and failed["best"] is None
    assert "model.net.activation=swish" in failed["overrides"]
    assert ok["status"] == "ok" and ok["best"] is not None and ok["steps"] > 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("dlf: error: 1 job(s) of the sweep failed"), last


def test_single_run_failure_is_one_line_and_recorded(tmp_path):
    r = run_train([*XOR, "model.net.activation=swish", "hydra.run.dir=run"], cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("dlf: error: model.net.activation")
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    assert res["status"] == "failed" and "swish" in res["error"]
