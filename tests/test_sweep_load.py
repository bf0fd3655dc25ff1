"""Load held: 12 short jobs through the joblib launcher with 4 workers (more workers than this machine's cores) finish
with 12 ok rows, each job's result and final weights equal to the same job run alone (the basic launcher: one job at a
time; and the last job as a plain single run). Same seed, CPU, deterministic, one torch thread everywhere."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch
from cli_server import ROOT, cli_env
from test_resume import assert_same
from test_sweep_resume import jobs, result, sweep

GRID = ["model=mlp_xor", "seed=1,2,3,4,5,6", "optimizer=sgd,adam", "data.repeats=10", "trainer.max_epochs=2",
        "trainer=cpu", "trainer.deterministic=true", "logger=csv", "callbacks.model_summary=null",
        "callbacks.cost_curve=null", "trainer.enable_progress_bar=false", "+hydra.callbacks.sweep_summary.figure=false",
        "hydra.callbacks.sweep_summary.threads_per_job=1"]


def _final(job) -> dict:
    return torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)


def _same_run(a, b, what: str) -> None:
    ra, rb = result(a), result(b)
    assert ra["status"] == rb["status"] == "ok", (ra, rb)
    assert (ra["best"], ra["last"], ra["steps"]) == (rb["best"], rb["last"], rb["steps"]), f"{what}: {ra} != {rb}"
    fa, fb = _final(a), _final(b)
    assert_same(fa["state_dict"], fb["state_dict"], f"{what} state_dict")
    assert_same(fa["optimizer_states"], fb["optimizer_states"], f"{what} optimizer_states")


@pytest.mark.slow
def test_twelve_jobs_on_four_workers_equal_the_jobs_run_alone(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    r = sweep([*GRID, "hydra/launcher=joblib", "hydra.launcher.n_jobs=4"], tmp_path, tmp_path / "parallel")
    assert r.returncode == 0, r.stderr[-3000:]
    parallel = jobs(tmp_path / "parallel")
    with open(tmp_path / "parallel" / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and [row["status"] for row in rows] == ["ok"] * 12, rows
    assert sorted(parallel) == list(range(12))
    for job in parallel.values():  # every job ran with one torch thread in a worker of its own
        assert "torch threads for this job: 1 " in (job / "train.log").read_text()

    r = sweep(GRID, tmp_path, tmp_path / "alone")  # one job at a time
    assert r.returncode == 0, r.stderr[-3000:]
    alone = jobs(tmp_path / "alone")
    assert sorted(alone) == list(range(12))
    for n in range(12):
        assert parallel[n].name == alone[n].name
        _same_run(parallel[n], alone[n], f"job {n} ({parallel[n].name})")

    # the last job once more as a plain single run: a sweep's earlier jobs leave nothing behind that changes it
    overrides = result(alone[11])["overrides"]  # the job's own command line, e.g. seed=6 optimizer=adam ...
    assert "seed=6" in overrides and "optimizer=adam" in overrides
    single = subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides,
                             f"hydra.run.dir={tmp_path / 'single'}"], cwd=tmp_path, env=cli_env(tmp_path),
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    assert os.path.isfile(tmp_path / "single" / "result.json")
    _same_run(tmp_path / "single", alone[11], "job 11 as a single run")
