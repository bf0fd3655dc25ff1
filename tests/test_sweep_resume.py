"""A killed sweep continues: `python train.py -m <overrides> hydra.sweep.dir=<dir> ckpt_path=last` after a SIGKILL or
SIGTERM of the whole multirun (its process group: main process and launcher workers). Finished jobs are not run again
(their result comes back into sweep.csv), the interrupted job resumes from its own last.ckpt and ends bit-identical to
the same job of an uninterrupted sweep, the jobs never started run fresh. Real `train.py` processes throughout."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_server import ROOT, cli_env, run_train
from test_resume import assert_same

# 3 jobs of XOR, 27 full-batch steps each (3 epochs of 9); last.ckpt every 4 steps and at each epoch end
GRID = ["model=mlp_xor", "optimizer.lr=0.05,0.1,0.2", "data.repeats=9", "trainer.max_epochs=3", "trainer=cpu",
        "trainer.deterministic=true", "logger=csv", "callbacks.step_checkpoint.every_n_train_steps=4",
        "callbacks.model_summary=null", "callbacks.cost_curve=null", "trainer.enable_progress_bar=false",
        "+hydra.callbacks.sweep_summary.figure=false"]
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


def sweep(args: list[str], cwd: Path, sweep_dir: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python train.py -m <args> hydra.sweep.dir=<sweep_dir>` in a process group of its own; returns once every
    process of the group (launcher workers too) is gone."""
    p = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "-m", *args, f"hydra.sweep.dir={sweep_dir}"],
                         cwd=cwd, env=cli_env(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        raise
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # workers may outlive the main process for a moment
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def jobs(sweep_dir: Path) -> dict[int, Path]:
    return {int(d.name.split("_", 1)[0]): d for d in sweep_dir.iterdir() if d.is_dir() and d.name[0].isdigit()}


def result(job: Path) -> dict | None:
    f = job / "result.json"
    return json.loads(f.read_text()) if f.is_file() else None


def fingerprint(job: Path) -> dict:
    """Every file a training run writes into a job dir (not Hydra's records), by content hash and mtime."""
    return {str(p.relative_to(job)): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in job.rglob("*") if p.is_file() and ".hydra" not in p.parts and p.name != "train.log"
            and p.name != "result.json"}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> dict[int, Path]:
    """The same sweep, left alone (basic launcher)."""
    cwd = tmp_path_factory.mktemp("sweep_base")
    r = sweep(GRID, cwd, cwd / "sweep")
    assert r.returncode == 0, r.stderr[-3000:]
    done = jobs(cwd / "sweep")
    assert sorted(done) == [0, 1, 2] and all(result(j)["status"] == "ok" for j in done.values())
    return done


def _final(job: Path) -> dict:
    return torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)


# (launcher, signal, job killed, step, where, the exit status of the killed sweep). About 1.5 min each on a loaded
# 2-core machine (two sweeps of real processes): the first runs in the default suite, the others with -m slow.
SLOW = pytest.mark.slow
CASES = [
    pytest.param([], "SIGKILL", 1, 10, "batch_start", -9, id="basic-SIGKILL"),        # job 1 resumes from step 8
    pytest.param([], "SIGTERM", 1, 5, "batch_end", 143, id="basic-SIGTERM", marks=SLOW),  # saved after step 6
    pytest.param([], "SIGKILL", 1, 2, "batch_start", -9, id="basic-SIGKILL-no-ckpt", marks=SLOW),  # no last.ckpt yet
    pytest.param(JOBLIB, "SIGKILL", 2, 10, "batch_start", -9, id="joblib-SIGKILL", marks=SLOW),
    pytest.param(JOBLIB, "SIGTERM", 2, 5, "batch_end", -15, id="joblib-SIGTERM", marks=SLOW),  # main: no handler
]


@pytest.mark.parametrize("launcher,sig,job,step,where,code", CASES)
def test_killed_sweep_continues_exactly(baseline, tmp_path, launcher, sig, job, step, where, code):
    kill = ["+callbacks.kill._target_=killers.KillGroupAt", f"+callbacks.kill.job={job}", f"+callbacks.kill.step={step}",
            f"+callbacks.kill.sig={sig}", f"+callbacks.kill.where={where}", f"+callbacks.kill.marker={tmp_path}/fired"]
    args, sweep_dir = [*GRID, *launcher, *kill], tmp_path / "sweep"
    r = sweep(args, tmp_path, sweep_dir)
    assert (tmp_path / "fired").is_file() and r.returncode == code, (r.returncode, r.stderr[-3000:])
    before = jobs(sweep_dir)
    records = {n: (j / ".hydra" / "config.yaml").read_bytes() for n, j in before.items()}
    finished = {n: fingerprint(j) for n, j in before.items() if (result(j) or {}).get("status") == "ok"}
    assert finished and job not in finished, {n: result(j) for n, j in before.items()}
    if not launcher:  # one job at a time: job 0 finished, job `job` interrupted, job 2 never started
        assert sorted(before) == [0, 1] and sorted(finished) == [0]
        assert (before[1] / "checkpoints" / "last.ckpt").is_file() == (step > 4)
    if sig == "SIGTERM":
        # the interrupted job's line (a joblib worker's; the launcher's warnings may follow it)
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("dlf: error: stopped by SIGTERM, saved ")]
        assert lines and "ckpt_path=last" in lines[0] and f"hydra.sweep.dir={sweep_dir}" in lines[0], r.stderr[-3000:]

    r2 = sweep(args + ["ckpt_path=last"], tmp_path, sweep_dir)
    assert r2.returncode == 0, r2.stderr[-3000:]
    after = jobs(sweep_dir)
    assert sorted(after) == [0, 1, 2] and {n: j.name for n, j in after.items() if n in before} == {
        n: j.name for n, j in before.items()}  # the same job dirs: ckpt_path is not part of their names
    for n, first in records.items():  # Hydra's first record kept; the continued sweep's beside it, numbered
        assert (after[n] / ".hydra" / "config.yaml").read_bytes() == first, f"job {n}: .hydra/config.yaml rewritten"
        assert "ckpt_path=last" in (after[n] / ".hydra" / "resume-1" / "overrides.yaml").read_text()
    assert not (after[2] / ".hydra" / "resume-1").exists() or 2 in before
    for n in finished:  # not run again: not a file of theirs rewritten
        assert fingerprint(after[n]) == finished[n], f"job {n} ran again"
        assert f"dlf: job {n} finished before" in r2.stdout
    for n, j in after.items():
        base = _final(baseline[n])
        got = _final(j)
        assert got["global_step"] == base["global_step"] == 27
        assert_same(base["state_dict"], got["state_dict"], f"job {n} state_dict")
        assert_same(base["optimizer_states"], got["optimizer_states"], f"job {n} optimizer_states")
        res, base_res = result(j), result(baseline[n])
        assert res["status"] == "ok" and (res["best"], res["last"]) == (base_res["best"], base_res["last"])
    with open(sweep_dir / "sweep.csv") as f:
        rows = {os.path.basename(row["run_dir"]): row for row in csv.DictReader(f)}
    assert sorted(rows) == sorted(j.name for j in after.values())  # the finished jobs' results are in the summary
    assert all(row["status"] == "ok" and float(row["best"]) == pytest.approx(result(after[int(name.split("_")[0])])[
        "best"], rel=1e-3) for name, row in rows.items())


def test_run_killed_after_training_keeps_its_last_value(tmp_path):
    """Killed between its final checkpoint and result.json (here: as the test stage starts), a job continued with
    ckpt_path=last trains and validates nothing; its result.json still carries the monitored value's best and last
    (the last from the checkpoint's record), as an uninterrupted run's does. (A sweep with this job in it used to
    write `last: null` and differ from the uninterrupted sweep.)"""
    args = ["model=mlp_xor", "data.repeats=9", "trainer.max_epochs=2", "trainer=cpu", "logger=csv",
            "callbacks.cost_curve=null", "callbacks.model_summary=null", "trainer.enable_progress_bar=false"]
    for d in ("alone", "killed"):
        (tmp_path / d).mkdir()
    alone = run_train(args, tmp_path / "alone")
    assert alone.returncode == 0, alone.stderr[-3000:]
    (want,) = (tmp_path / "alone").glob("logs/mlp_xor/runs/*/result.json")
    kill = ["+callbacks.kill._target_=killers.KillAt", "+callbacks.kill.step=0", "+callbacks.kill.where=test_start"]
    killed = run_train(args + kill, tmp_path / "killed")
    assert killed.returncode == -9, killed.stderr[-3000:]
    (run,) = (tmp_path / "killed").glob("logs/mlp_xor/runs/*")
    assert not (run / "result.json").exists() and (run / "checkpoints" / "last.ckpt").is_file()
    again = run_train(args + ["ckpt_path=last"], tmp_path / "killed")
    assert again.returncode == 0, again.stderr[-3000:]
    got, base = json.loads((run / "result.json").read_text()), json.loads(want.read_text())
    assert got["last"] is not None and (got["best"], got["last"], got["steps"]) == (base["best"], base["last"],
                                                                                    base["steps"])
