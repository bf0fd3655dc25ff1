"""dlf on a real Slurm cluster: the local one-node cluster of scripts/slurm_local.sh (munge, slurmdbd on MariaDB,
slurmctld, slurmd), brought up by the `slurm_cluster` fixture. Every job is a real sbatch job running `train.py`'s task;
`sacct` is asked how each ended. Times on the 2-core machine are in each test's docstring."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

CPU_JOB = ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
           "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10"]  # what a node of the local cluster has
XOR = ["model=mlp_xor", "trainer.max_steps=20"]
# README's "Scaling out" rows, run here as written (tests/test_readme_commands.py exempts them: they need the cluster)
README_SWEEP = ("python train.py -m hydra/launcher=slurm hydra.launcher.gpus_per_node=0 hydra.launcher.cpus_per_task=1 "
                "hydra.launcher.mem_gb=1 model=mlp_xor trainer.max_steps=20 seed=1,2,3")
README_SBATCH = "sbatch scripts/slurm/ddp_cpu.sbatch model=mlp"


def readme_args(command: str) -> list[str]:
    """The arguments of a command README.md shows (asserted to be there), after `python train.py` / `sbatch <script>`."""
    import shlex

    from doc_commands import all_commands

    assert command in {c.text for c in all_commands()}, f"README.md no longer shows {command!r}"
    return shlex.split(command)[2:]


def sacct(job: str) -> dict[str, str]:
    """{job id: state} of a job (array tasks each), from Slurm's accounting (slurmdbd)."""
    for _ in range(30):  # slurmctld hands a finished job to slurmdbd within seconds
        out = subprocess.run(["sacct", "-j", job, "-X", "-n", "-P", "-o", "JobID,State"], capture_output=True,
                             text=True, timeout=60).stdout
        states = dict(line.split("|", 1) for line in out.splitlines() if "|" in line)
        if states and all(s.split()[0] not in ("PENDING", "RUNNING", "COMPLETING") for s in states.values()):
            return states
        time.sleep(1)
    return states


def sweep_dir(root: Path) -> Path:
    (d,) = sorted(root.glob("logs/*/multiruns/*"))
    return d


def array_id(sweep: Path) -> str:
    """The Slurm job id of the sweep's job array, from submitit's folders (.submitit/<id>_<task>)."""
    ids = {p.name.split("_")[0] for p in (sweep / ".submitit").iterdir() if p.is_dir()}
    assert len(ids) == 1, ids
    return ids.pop()


def results(sweep: Path) -> dict[str, dict]:
    return {f.parent.name: json.loads(f.read_text()) for f in sorted(sweep.glob("*/result.json"))}


def test_sweep_runs_as_slurm_jobs(slurm_cluster, tmp_path, run_cli):
    """`-m hydra/launcher=slurm seed=1,2,3`: three array tasks, COMPLETED in sacct, each result.json ok, the sweep's
    summary written when the last ended. About 25 s."""
    r = run_cli(readme_args(README_SWEEP), cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    sweep = sweep_dir(tmp_path)
    job = array_id(sweep)
    assert sacct(job) == {f"{job}_{i}": "COMPLETED" for i in range(3)}
    res = results(sweep)
    assert sorted(res) == [f"{i}_model=mlp_xor,seed={i + 1},trainer.max_steps=20" for i in range(3)]
    assert all(v["status"] == "ok" and v["steps"] == 20 for v in res.values()), res
    for name in ("sweep.csv", "sweep.md", "sweep.png"):
        assert (sweep / name).stat().st_size > 0
    assert "3 runs (3 ok)" in r.stdout


def test_a_cancelled_job_is_a_row_and_the_sweep_exits_1(slurm_cluster, tmp_path, root):
    """scancel of one job of a running sweep: the other job completes, the cancelled one is an `interrupted` row
    naming its Slurm state and log, and the multirun exits 1 with one line; no hang. About 30 s."""
    env = _env(tmp_path, root)  # run_cli's environment, for a process started in the background
    # max_epochs=-1: job 1 trains until cancelled (XOR's 10 epochs would end it in seconds, before the scancel)
    cmd = [*_python(root), "-m", *CPU_JOB, "model=mlp_xor", "trainer.max_epochs=-1", "trainer.max_steps=20,200000"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        task = _wait_running(tmp_path, "_1")
        subprocess.run(["scancel", task], check=True, timeout=60)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 1, err[-3000:]
    sweep = sweep_dir(tmp_path)
    states = sacct(array_id(sweep))
    assert states[task].startswith("CANCELLED") and states[task.replace("_1", "_0")] == "COMPLETED", states
    res = results(sweep)
    assert res["0_model=mlp_xor,trainer.max_epochs=-1,trainer.max_steps=20"]["status"] == "ok"
    cancelled = res["1_model=mlp_xor,trainer.max_epochs=-1,trainer.max_steps=200000"]
    assert cancelled["status"] == "interrupted" and f"Slurm job {task} ended CANCELLED" in cancelled["error"]
    assert "1 ok, 1 interrupted" in out and (sweep / "sweep.csv").is_file()
    lines = [x for x in err.splitlines() if x.startswith("dlf: error:")]
    assert len(lines) == 1 and "1 of 2 jobs of the sweep failed" in lines[0] and "ckpt_path=last" in lines[0], err
    assert "Traceback" not in err


def test_a_job_killed_without_a_result_is_a_failed_row(slurm_cluster, tmp_path, root):
    """A job whose process dies by SIGKILL at step 10 (no result.json, no result for submitit): a `failed` row naming
    its Slurm state and log, the other job's row ok, the multirun exits 1 with one line. About 35 s."""
    env = {**_env(tmp_path, root), "PYTHONPATH": f"{root / 'src'}:{root / 'tests'}"}
    kill = ["+callbacks.kill._target_=killers.KillAt", "+callbacks.kill.step=10"]  # job 0 stops at step 5
    r = subprocess.run([*_python(root), "-m", *CPU_JOB, "model=mlp_xor", "trainer.max_steps=5,50", *kill], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stderr[-3000:]
    sweep = sweep_dir(tmp_path)
    states = sacct(array_id(sweep))
    res = {k.split("_", 1)[0]: v for k, v in results(sweep).items()}  # job 0: max_steps=5, job 1: 50
    assert res["0"]["status"] == "ok" and "trainer.max_steps=50" in res["1"]["overrides"]
    failed = res["1"]
    assert failed["status"] == "failed" and "without a result" in failed["error"] and "_log.err" in failed["error"]
    assert states[f"{array_id(sweep)}_1"] in failed["error"], (states, failed)
    lines = [x for x in r.stderr.splitlines() if x.startswith("dlf: error:")]
    assert len(lines) == 1 and "1 of 2 jobs of the sweep failed" in lines[0] and "Traceback" not in r.stderr


def test_a_job_asking_for_more_than_the_cluster_has_is_one_line(slurm_cluster, tmp_path, run_cli):
    """hydra/launcher=slurm's defaults (1 GPU, 8 CPUs, 32 GB) on the 2-core, GPU-less node: sbatch refuses at
    submission, and dlf says what the jobs asked for, what the node has and what to set. About 2 s."""
    r = run_cli(["-m", "hydra/launcher=slurm", *XOR, "seed=1,2"], cwd=tmp_path, timeout=120)
    assert r.returncode == 2
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("dlf: error:")]
    assert "Slurm refused the sweep's jobs" in line and "gpus_per_node=1, cpus_per_task=8, mem_gb=32" in line
    assert "hydra.launcher.gpus_per_node=0" in line and "CPUs" in line and "Traceback" not in r.stderr
    r = run_cli(["-m", *CPU_JOB[:3], *XOR, "hydra.launcher.mem_gb=100000", "seed=1"], cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "mem_gb=100000" in r.stderr and "Traceback" not in r.stderr


# ---- helpers ------------------------------------------------------------------------------------------------------
def _python(root: Path) -> list[str]:
    import sys

    return [sys.executable, str(root / "train.py")]


def _env(cwd: Path, root: Path) -> dict:
    import os

    e = dict(os.environ)
    e.pop("HYDRA_FULL_ERROR", None)
    e["DLF_ROOT"] = str(cwd)
    e["PYTHONPATH"] = os.pathsep.join([str(root / "src"), *filter(None, [e.get("PYTHONPATH")])])
    return e


def _wait_running(root: Path, suffix: str, timeout: float = 120) -> str:
    """The id of the sweep's array task ending in `suffix` once Slurm runs it and its job has trained a step."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sweeps = list(root.glob("logs/*/multiruns/*/.submitit"))
        tasks = [p.name for s in sweeps for p in s.iterdir() if p.name.endswith(suffix)] if sweeps else []
        if tasks:
            out = subprocess.run(["squeue", "-h", "-j", tasks[0], "-o", "%T"], capture_output=True, text=True).stdout
            if "RUNNING" in out and list(root.glob("logs/*/multiruns/*/1_*/train.log")):
                time.sleep(3)  # well into training
                return tasks[0]
        time.sleep(0.5)
    queue = subprocess.run(["squeue"], capture_output=True, text=True).stdout
    raise AssertionError(f"no array task *{suffix} ran within {timeout} s: {queue}")


# ---- DDP under srun, and a requeue ------------------------------------------------------------------------------
def sbatch(root: Path, cwd: Path, args: list[str], env: dict | None = None) -> str:
    """`sbatch scripts/slurm/ddp_cpu.sbatch <args>` from the clone (train.py there), logs under cwd; the job id."""
    import sys

    e = {**_env(cwd, root), "DLF_PYTHON": sys.executable, **(env or {})}
    e["PYTHONPATH"] = f"{root / 'src'}:{root / 'tests'}"
    r = subprocess.run(["sbatch", "--parsable", f"--output={cwd}/slurm-%j.out", "scripts/slurm/ddp_cpu.sbatch", *args],
                       cwd=root, env=e, capture_output=True, text=True, timeout=60, check=True)
    return r.stdout.strip().split(";")[0]


def wait_done(job: str, timeout: float = 600) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        state = sacct(job).get(job, "PENDING").split()[0]
        if state not in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING", "RESIZING", "SUSPENDED"):
            return state
        time.sleep(2)
    subprocess.run(["scancel", job])
    raise AssertionError(f"job {job} still {state} after {timeout} s")


DDP = ["model=mlp", "data.batch_size=50", "trainer.max_epochs=1", "trainer.limit_train_batches=20",
       "trainer.limit_val_batches=1", "trainer.deterministic=true", "logger=none", "callbacks.model_summary=null"]


@pytest.mark.slow
def test_ddp_under_srun_matches_ddp_cpu(slurm_cluster, tmp_path, root, run_cli):
    """scripts/slurm/ddp_cpu.sbatch: srun starts 2 tasks of trainer=ddp_cpu (Lightning's SLURMEnvironment): one run
    dir slurm_<job>_0, the Test/Run dir lines once (rank 0), and the test loss of the same run under trainer=ddp_cpu
    without Slurm, to tests/test_ddp.py's tolerance. About 90 s (two DDP runs)."""
    from test_ddp import EQUIV_TOL, _test_loss

    (tmp_path / "slurm").mkdir()
    job = sbatch(root, tmp_path / "slurm", [*readme_args(README_SBATCH), *DDP])  # README's row + a small budget
    assert wait_done(job) == "COMPLETED", (tmp_path / "slurm" / f"slurm-{job}.out").read_text()[-3000:]
    out = (tmp_path / "slurm" / f"slurm-{job}.out").read_text()
    runs = list((tmp_path / "slurm").glob("logs/*/runs/*"))
    assert [r.name for r in runs] == [f"slurm_{job}_0"], runs
    assert out.count("Test: ") == 1 and out.count("Run dir: ") == 1, out[-3000:]
    assert (runs[0] / "checkpoints" / "last.ckpt").is_file() and (runs[0] / ".hydra" / "config.yaml").is_file()
    assert "MEMBER: 2/2" in (runs[0] / "train.log").read_text()
    (tmp_path / "plain").mkdir()
    plain = run_cli([*DDP, "trainer=ddp_cpu"], cwd=tmp_path / "plain", timeout=600)
    assert plain.returncode == 0, plain.stderr[-3000:]
    a, b = _test_loss(out), _test_loss(plain.stdout)
    print(f"test/loss under srun {a}, under trainer=ddp_cpu {b}")
    assert abs(a - b) <= EQUIV_TOL, (a, b)


@pytest.mark.slow
def test_a_requeued_job_continues_in_its_run_dir_bit_identically(slurm_cluster, tmp_path, root):
    """`scontrol requeue` of the DDP job while it trains (paused at step 10; last.ckpt every 4 steps): Slurm starts it
    again (SLURM_RESTART_COUNT=1), it resumes from its own run dir's last.ckpt (slurm_<job>_0, not a new dir) and ends
    with the weights and optimizer state of the same job left alone. About 2-3 min."""
    from test_resume import assert_same

    args = [*DDP, "trainer.limit_train_batches=null", "trainer.max_epochs=2", "logger=csv",
            "callbacks.step_checkpoint.every_n_train_steps=4"]
    alone_dir, requeued_dir = tmp_path / "alone", tmp_path / "requeued"
    alone_dir.mkdir()
    requeued_dir.mkdir()
    alone = sbatch(root, alone_dir, args)
    assert wait_done(alone) == "COMPLETED", (alone_dir / f"slurm-{alone}.out").read_text()[-3000:]
    marker = tmp_path / "paused"
    job = sbatch(root, requeued_dir, [*args, "+callbacks.pause._target_=killers.PauseAt", "+callbacks.pause.step=10",
                                      f"+callbacks.pause.marker={marker}"])
    end = time.monotonic() + 300
    while not marker.exists() and time.monotonic() < end:
        time.sleep(0.5)
    assert marker.exists(), (requeued_dir / f"slurm-{job}.out").read_text()[-3000:]
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=60)
    assert wait_done(job) == "COMPLETED", (requeued_dir / f"slurm-{job}.out").read_text()[-3000:]
    out = (requeued_dir / f"slurm-{job}.out").read_text()
    (run,) = requeued_dir.glob("logs/*/runs/*")
    assert run.name == f"slurm_{job}_0", run
    assert "Restored" in (run / "train.log").read_text() or "resume" in out.lower(), out[-3000:]
    assert (run / ".hydra" / "resume-1" / "config.yaml").is_file()  # the requeued start's record beside the first
    (base,) = alone_dir.glob("logs/*/runs/*")
    a, b = (torch_load(d / "checkpoints" / "last.ckpt") for d in (base, run))
    print(f"global_step alone {a['global_step']}, requeued {b['global_step']}; state_dict max |diff| "
          f"{max((x - b['state_dict'][k]).abs().max().item() for k, x in a['state_dict'].items())}")
    assert a["global_step"] == b["global_step"]
    assert_same(a["state_dict"], b["state_dict"], "state_dict")
    assert_same(a["optimizer_states"], b["optimizer_states"], "optimizer_states")


def torch_load(path: Path) -> dict:
    import torch

    return torch.load(path, weights_only=True)


@pytest.mark.slow
def test_a_requeued_job_of_a_slurm_sweep_resumes_from_its_own_last_ckpt(slurm_cluster, tmp_path, root):
    """`scontrol requeue` of one array task of a hydra/launcher=slurm sweep while it trains (paused at step 10;
    last.ckpt every 4 steps): submitit runs the job again in the same job dir, the job resumes from its own last.ckpt
    and the sweep ends with exit 0 and the weights of the same job of the sweep left alone. About 2-3 min."""
    from test_resume import assert_same

    grid = ["-m", *CPU_JOB, "model=mlp_xor", "optimizer.lr=0.05,0.1", "data.repeats=9", "trainer.max_epochs=3",
            "trainer=cpu", "trainer.deterministic=true", "logger=csv", "callbacks.step_checkpoint.every_n_train_steps=4",
            "+hydra.callbacks.sweep_summary.figure=false"]
    env = {**_env(tmp_path, root), "PYTHONPATH": f"{root / 'src'}:{root / 'tests'}"}
    alone = subprocess.run([*_python(root), *grid, f"hydra.sweep.dir={tmp_path}/alone"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stderr[-3000:]
    marker = tmp_path / "paused"
    pause = ["+callbacks.pause._target_=killers.PauseAt", "+callbacks.pause.step=10", f"+callbacks.pause.marker={marker}"]
    proc = subprocess.Popen([*_python(root), *grid, *pause, f"hydra.sweep.dir={tmp_path}/requeued"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 300
        while not marker.exists() and time.monotonic() < end:
            time.sleep(0.5)
        assert marker.exists()
        time.sleep(0.5)  # the marker's job id, written just after the file appears
        task = marker.read_text().strip()  # the paused job (the other one of the array does not pause)
        assert task and (tmp_path / "requeued" / ".submitit" / task).is_dir(), task
        subprocess.run(["scontrol", "requeue", task], check=True, timeout=60)
        out, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    logs = "".join(p.read_text() for p in (tmp_path / "requeued" / ".submitit").glob("*/*.out"))
    assert "resumes from" in logs, logs[-3000:]
    for job in ("0", "1"):
        (a,) = (tmp_path / "alone").glob(f"{job}_*")
        (b,) = (tmp_path / "requeued").glob(f"{job}_*")
        x, y = (torch_load(d / "checkpoints" / "last.ckpt") for d in (a, b))
        assert x["global_step"] == y["global_step"] == 27
        assert_same(x["state_dict"], y["state_dict"], f"job {job}")
