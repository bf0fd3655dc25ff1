"""Hydra sweeps: job dirs named by their overrides, the sweep summary (sweep.csv/md/png, dlf-compare, a damaged event
file), TensorBoard's HPARAMS data, the Optuna configs and search, the joblib / submitit launchers."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
from cli_server import DATA_CACHE, shared_server
from hydra import compose, initialize_config_dir

from dlf.run.sweep import MAX_NAME, job_dir_name, threads_per_job
from dlf.run.train import CONFIG_DIR

# XOR with 10 steps (one epoch of 10 full-batch steps, train/loss logged every 5): each job trains in about a second
FAST = ["trainer.max_epochs=1", "data.repeats=10"]


def _sweep_dir(cwd, task="mlp_xor"):
    dirs = list((cwd / "logs" / task / "multiruns").iterdir())
    assert len(dirs) == 1, dirs  # one sweep dir, whichever process ran the jobs
    return dirs[0]


def _hashes(root):
    import hashlib

    return {p: hashlib.sha1(p.read_bytes()).hexdigest() for p in root.rglob("*")
            if p.is_file() and not p.name.startswith("sweep.") and p != root / "report.html"}


def _rows(sweep):
    with open(sweep / "sweep.csv") as f:
        return list(csv.DictReader(f))


def _compare(args, cwd, root):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "dlf.tools.compare", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def grid(tmp_path_factory, run_cli):
    """A 2 x 2 grid in which the two jobs with a negative learning rate fail at start-up."""
    cwd = tmp_path_factory.mktemp("grid")
    r = run_cli(["-m", "optimizer=sgd,adam", "optimizer.lr=0.5,-1", *FAST], cwd=cwd)
    return r, _sweep_dir(cwd)


def test_job_dirs_are_named_by_number_and_overrides(grid):
    r, sweep = grid
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    expect = {f"data.repeats=10,optimizer.lr={lr},optimizer={opt},trainer.max_epochs=1" for opt in ("sgd", "adam")
              for lr in ("0.5", "-1")}  # Hydra's override_dirname: the job's overrides, sorted
    assert {j.split("_", 1)[1] for j in jobs} == expect, jobs
    assert sorted(int(j.split("_", 1)[0]) for j in jobs) == [0, 1, 2, 3]
    ok = [sweep / j for j in jobs if "lr=0.5" in j]
    assert all(len(list(d.glob("events.out.tfevents.*"))) == 1 for d in ok)  # TensorBoard lists these names


def test_sweep_summary_has_a_row_per_job_and_the_failed_jobs_error(grid):
    r, sweep = grid
    assert r.returncode == 1, r.stderr[-2000:]  # two jobs failed: the sweep ran on, then exited non-zero
    rows = _rows(sweep)
    assert len(rows) == 4
    by_status = {s: [row for row in rows if row["status"] == s] for s in ("ok", "failed")}
    assert len(by_status["ok"]) == 2 and len(by_status["failed"]) == 2, rows
    for row in by_status["ok"]:
        result = json.loads((sweep / os.path.basename(row["run_dir"]) / "result.json").read_text())
        assert row["monitor"] == "val/loss" and float(row["best"]) == pytest.approx(result["best"], rel=1e-3)
        assert int(row["steps"]) == 10 and float(row["wall_s"]) > 0 and row["overrides"].startswith("optimizer")
    for row in by_status["failed"]:
        assert "optimizer.lr=-1" in row["overrides"] and "must be a positive number" in row["note"]
        assert "\n" not in row["note"]
    md = (sweep / "sweep.md").read_text()
    assert "| job | overrides | status |" in md and md.count("| failed |") == 2 and "![" in md
    assert (sweep / "sweep.png").stat().st_size > 10_000
    for name in ("sweep.md", "sweep.csv", "sweep.png"):
        assert str(sweep / name).endswith(name) and name in r.stdout  # the paths are printed


def test_hparams_plugin_data_read_back_from_the_event_files(grid):
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.plugins.hparams import plugin_data_pb2

    _, sweep = grid
    seen = set()
    for job in sweep.glob("*lr=0.5*"):
        acc = ea.EventAccumulator(str(job))
        acc.Reload()
        content = acc.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
        hp = start.hparams
        assert hp["lr"].number_value == 0.5 and hp["model"].string_value == "mlp_xor"  # optimizer.lr: the lr used
        assert hp["data.repeats"].number_value == 10 and hp["seed"].number_value == 42
        assert hp["model.net.hidden"].string_value == "[5]" and hp["job"].number_value in (0, 2)
        assert not any(k.startswith(("hydra", "paths", "schema", "callbacks", "logger")) for k in hp)
        seen.add(hp["optimizer"].string_value)
        assert "_hparams_/experiment" not in content  # no run may claim the log dir's columns (docs: hparams.py)
        assert "_hparams_/session_end_info" in content
        best = json.loads((job / "result.json").read_text())["best"]
        assert acc.Scalars("hp/best")[-1].value == pytest.approx(best, rel=1e-5)
    assert seen == {"sgd", "adam"}


@pytest.mark.parametrize("damage", ["truncate", "flip", "zero"])
def test_dlf_compare_marks_a_damaged_event_file_and_summarizes_the_rest(grid, tmp_path, damage, root):
    _, sweep = grid
    copy = shutil.copytree(sweep, tmp_path / "sweep")
    for f in copy.glob("sweep.*"):
        f.unlink()
    bad_job = next(j for j in copy.iterdir() if "optimizer=adam" in j.name and "lr=0.5" in j.name)
    events = next(bad_job.glob("events.out.tfevents.*"))
    data = events.read_bytes()
    damaged = {"truncate": data[: len(data) // 2],
               "flip": data[:200] + bytes(b ^ 0xFF for b in data[200:240]) + data[240:],
               "zero": bytes(len(data))}[damage]
    events.write_bytes(damaged)
    before = _hashes(copy)
    r = _compare([copy], tmp_path, root)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _hashes(copy) == before  # nothing else touched: only sweep.csv/md/png and the sweep's report.html are written
    lines = [ln for ln in r.stdout.splitlines() if "damaged" in ln and ln.startswith("dlf-compare:")]
    assert len(lines) == 1 and bad_job.name in lines[0], r.stdout
    rows = {os.path.basename(row["run_dir"]): row for row in _rows(copy)}
    assert len(rows) == 4
    assert rows[bad_job.name]["status"] == "ok (events damaged)" and "event file damaged" in rows[bad_job.name]["note"]
    others = [row for name, row in rows.items() if name != bad_job.name and "lr=0.5" in name]
    assert len(others) == 1 and others[0]["status"] == "ok" and float(others[0]["best"]) > 0
    assert (copy / "sweep.png").is_file() and (copy / "sweep.md").is_file()


def test_dlf_compare_on_a_dir_without_runs_fails_in_one_line(tmp_path, root):
    r = _compare([tmp_path], tmp_path, root)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith("dlf: error: no runs under")


def test_job_dir_name_is_safe_and_capped():
    assert job_dir_name(3, "optimizer=adam,seed=1") == "3_optimizer=adam,seed=1"
    assert job_dir_name(0, "") == "0"
    assert job_dir_name(1, "data.path=/a b/c:d,x='q'") == "1_data.path=_a_b_c_d,x=q"
    long_a, long_b = job_dir_name(7, "x=" + "a" * 300), job_dir_name(7, "x=" + "a" * 299 + "b")
    assert len(long_a) == MAX_NAME and long_a.startswith("7_x=aaa") and long_a != long_b


def test_threads_per_job_share_the_cores():
    joblib = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 4}
    assert threads_per_job(joblib, 16) == 4 and threads_per_job(joblib, 2) == 1
    assert threads_per_job({**joblib, "n_jobs": -1}, 8) == 1
    assert threads_per_job({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
                            "cpus_per_task": 6}, 32) == 6
    assert threads_per_job({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 8) is None


# ---- Optuna sweeper and the launchers (the [sweep] extra; .ci/run installs it) ----

@pytest.mark.parametrize("name, mode", [("mlp_xor_optuna", "min"), ("lstm_optuna", "min"), ("cnn_optuna", "min"),
                                        ("gan_optuna", "max")])
def test_hparams_search_configs(name, mode):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
    from optuna.distributions import CategoricalDistribution, LogUniformDistribution

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"hparams_search={name}"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and cfg.monitor_mode == mode
    assert sweeper.direction == {"min": "minimize", "max": "maximize"}[mode]
    assert isinstance(sweeper.sampler.seed, int) and cfg.task_name == name.replace("_optuna", "")
    space, fixed = create_params_from_overrides([f"{k}={v}" for k, v in sweeper.params.items()])
    assert not fixed and len(space) >= 3
    assert isinstance(space["optimizer.lr"], LogUniformDistribution)
    assert any(isinstance(d, CategoricalDistribution) for d in space.values())


def test_optuna_search_runs_end_to_end_and_reports_the_best_trial(tmp_path, run_cli):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    r = run_cli(["-m", "hparams_search=mlp_xor_optuna", "hydra.sweeper.n_trials=3", *FAST], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout + r.stderr
    assert "Best parameters" in out and "Best value" in out
    sweep = _sweep_dir(tmp_path)
    from omegaconf import OmegaConf

    best = OmegaConf.load(sweep / "optimization_results.yaml")
    bests = [json.loads(f.read_text())["best"] for f in sweep.glob("*/result.json")]
    assert len(bests) == 3 and best.best_value == pytest.approx(min(b for b in bests if b is not None))
    assert all("optimizer.lr=" in d.name and "hparams_search" not in d.name for d in sweep.glob("[0-9]*"))
    assert len(_rows(sweep)) == 3


# Each search config with a budget that still validates (Optuna needs every trial's monitored value).
SEARCH_BUDGETS = {
    "mlp_xor_optuna": FAST,
    "lstm_optuna": ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                    "trainer.limit_test_batches=1", "model.net.hidden_size=8", f"paths.data_dir={DATA_CACHE}"],
    "cnn_optuna": ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                   "trainer.limit_test_batches=1", "callbacks.cnn_figures=null"],
    "gan_optuna": ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                   "trainer.limit_test_batches=1", "model.n_eval=200"],
}
SPOIL = ["+callbacks.spoil._target_=killers.SpoilJobs", "+callbacks.spoil.diverge=[0]", "+callbacks.spoil.fail=[1]",
         "+callbacks.spoil.blind=[2]"]


@pytest.mark.parametrize("name", list(SEARCH_BUDGETS))
def test_a_search_goes_on_past_trials_that_diverge_fail_or_never_validate(name, tmp_path):
    """Jobs 0-2 of a 4-trial search diverge, raise and never validate; job 3 trains. Every trial runs; the plugin tells
    Optuna each of the three FAIL (its "Failed experiment" line follows that call); the best parameters and value are
    job 3's; the summary has four rows; the sweep exits 1 with its one line. (On 2862a7e the first NaN ended the
    search: "Values were told. Values cannot be specified when state is TrialState.PRUNED or TrialState.FAIL.")"""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from omegaconf import OmegaConf

    task = name.replace("_optuna", "")
    r = shared_server().run(["-m", f"hparams_search={name}", "hydra.sweeper.n_trials=4", *SEARCH_BUDGETS[name], *SPOIL],
                            cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    assert r.stderr.strip().splitlines()[-1].startswith("dlf: error: 3 of 4 jobs of the sweep failed, e.g. job 0 ")
    assert "Traceback" not in out and "Values were told" not in out
    for job, status in ((0, "diverged"), (1, "failed"), (2, "failed")):
        assert f"Failed experiment: job {job} {status}: " in out, out[-3000:]
    assert "spoiled on purpose" in out and "was never logged" in out
    sweep = _sweep_dir(tmp_path, task)
    results = {d.name.split("_", 1)[0]: json.loads((d / "result.json").read_text()) for d in sweep.glob("[0-9]*")}
    assert {k: v["status"] for k, v in results.items()} == {"0": "diverged", "1": "failed", "2": "failed", "3": "ok"}
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == pytest.approx(results["3"]["best"])
    assert {f"{k}={v}" for k, v in best.best_params.items()} <= set(results["3"]["overrides"])
    assert "Best parameters" in out and len(_rows(sweep)) == 4 and (sweep / "sweep.md").is_file()


def test_a_search_whose_every_trial_fails_still_ends_with_its_summary_and_line(tmp_path):
    """The issue's command: both trials diverge; no best parameters (one line says so), the summary, exit 1."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    r = shared_server().run(["-m", "hydra/sweeper=optuna", "model=mlp", "optimizer=sgd", "optimizer.lr=choice(1e12)",
                             "hydra.sweeper.n_trials=2", "trainer.max_epochs=2"], cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    assert r.stderr.strip().splitlines()[-1].startswith("dlf: error: 2 of 2 jobs of the sweep failed")
    assert "Traceback" not in out and "no trial of the search returned a value" in out
    sweep = _sweep_dir(tmp_path, "mlp")
    assert [row["status"] for row in _rows(sweep)] == ["diverged", "diverged"]
    assert not (sweep / "optimization_results.yaml").exists()


def test_plain_optuna_sweeper_follows_the_monitor_mode(tmp_path):
    """`hydra/sweeper=optuna` without a search config: model=mlp monitors val/acc (max), so Optuna maximizes; the
    command line still decides where it says so."""
    from hydra.core.override_parser.overrides_parser import OverridesParser  # noqa: F401 - Hydra is importable
    from omegaconf import OmegaConf

    from dlf.run.sweep import use_dlf_optuna

    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    for extra, direction, rate in (([], "maximize", 1.0),
                                   (["hydra.sweeper.direction=minimize", "hydra.sweeper.max_failure_rate=0.5"],
                                    "minimize", 0.5)):
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=["hydra/sweeper=optuna", "model=mlp", *extra], return_hydra_config=True)
        OmegaConf.set_struct(cfg, True)
        use_dlf_optuna(cfg)
        assert cfg.hydra.sweeper._target_ == "hydra_plugins.dlf_optuna_sweeper.OptunaSweeper"
        assert str(cfg.hydra.sweeper.direction).endswith(direction) and cfg.hydra.sweeper.max_failure_rate == rate


def test_joblib_launcher_runs_jobs_in_parallel_with_a_share_of_the_cores(tmp_path, run_cli):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    from dlf.run.sweep import cores

    r = run_cli(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optimizer=sgd,adam", *FAST], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    sweep = _sweep_dir(tmp_path)  # the workers (other pids) wrote into the main process's sweep dir
    assert [row["status"] for row in _rows(sweep)] == ["ok", "ok"]
    for log in sweep.glob("*/train.log"):
        assert f"torch threads for this job: {max(1, cores() // 2)} " in log.read_text()


def test_submitit_local_launcher_runs_a_two_job_sweep(tmp_path, run_cli):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    r = run_cli(["-m", "hydra/launcher=submitit_local", "optimizer=sgd,adam", *FAST], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    sweep = _sweep_dir(tmp_path)
    rows = _rows(sweep)
    assert [row["status"] for row in rows] == ["ok", "ok"] and {row["overrides"] for row in rows} == {
        "optimizer=sgd", "optimizer=adam"}


def test_slurm_launcher_config_builds_on_submitit_slurm():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1 and launcher.timeout_min > 0
    assert launcher.array_parallelism > 0 and "qos" in launcher  # the plugin's own keys are all there
