"""logger=mlflow and logger=wandb (dlf.tracking) through the front door, several loggers at once, and the one line a user
gets without a logger's package or a sweeper/launcher plugin.

- MLflow against a real `mlflow server` with a SQLite backend, started here on 127.0.0.1 and stopped leaving nothing
  running (`mlflow_server`): the run's params (the resolved config, flattened), metrics and checkpoints read back
  through MlflowClient; `ckpt_path=last` continues that MLflow run and the run dir's W&B run instead of new ones.
- A 2-job multirun with MLflow's default store (logs/mlflow.db) and W&B offline (nobody is logged in here): each job
  its own MLflow run and its own W&B run, each finished at the job's end.
- A package missing: a Python that cannot see it (tests/without_packages/sitecustomize.py); nothing is uninstalled.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cli_server import ROOT, run_train, shared_server

mlflow = pytest.importorskip("mlflow", reason='pip install -e ".[mlflow]"')
wandb_pb = pytest.importorskip("wandb.proto.wandb_internal_pb2", reason='pip install -e ".[wandb]"')
from mlflow.tracking import MlflowClient  # noqa: E402

XOR = ["model=mlp_xor", "trainer=cpu", "trainer.max_steps=-1", "trainer.max_epochs=1"]
WITHOUT = ROOT / "tests" / "without_packages"


# ---- a real MLflow server ---------------------------------------------------------------------------------------------
def _group_alive(pgid: int) -> list[int]:
    """The processes of process group `pgid` that still run (zombies left out: they have ended)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's whole process group (uvicorn's workers, ...), SIGKILL after 20 s; fails if any remain."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            proc.poll()
            if not _group_alive(proc.pid):
                return
            time.sleep(0.2)
    raise AssertionError(f"the mlflow server's processes {_group_alive(proc.pid)} still run after SIGKILL")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """`mlflow server` on a free port of 127.0.0.1, its runs in a SQLite file, its artifacts in a folder; yields its URL."""
    home = tmp_path_factory.mktemp("mlflow_server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = open(home / "server.log", "w")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no background job runner: less to start
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
                             "--artifacts-destination", str(home / "artifacts"), "--workers", "1"],
                            cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"mlflow server exited: {(home / 'server.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"mlflow server not up in 120 s: {(home / 'server.log').read_text()}"
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        _stop_group(proc)
        log.close()
    assert not _group_alive(proc.pid)


# ---- reading what the trackers recorded -------------------------------------------------------------------------------
def wandb_records(path: Path) -> list:
    """The records of a W&B run file (run-<id>.wandb): a 7-byte header (':W&B', magic, version), then LevelDB's log
    format (32 KiB blocks of chunks: crc32, length, type FULL=1 / FIRST=2 / MIDDLE=3 / LAST=4) of protobuf Records."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    block, pos, chunk, out = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        if kind == 0:  # zeros: the rest of the block is padding
            pos += left
            continue
        chunk += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_pb.Record()
            record.ParseFromString(chunk)
            out.append(record)
            chunk = b""
    return out


def wandb_runs(run_dir: Path) -> list[dict]:
    """Each W&B run dir under <run dir>/wandb/: its id, whether it ran offline, and its exit code (None: never
    finished)."""
    runs = []
    for d in sorted((run_dir / "wandb").glob("*run-*")):
        if d.is_symlink():  # latest-run
            continue
        (f,) = d.glob("run-*.wandb")
        exits = [r.exit.exit_code for r in wandb_records(f) if r.WhichOneof("record_type") == "exit"]
        runs.append({"id": f.stem[len("run-"):], "offline": d.name.startswith("offline-run-"),
                     "exit_code": exits[-1] if exits else None})
    return runs


def _only_run_dir(root: Path, task: str = "mlp_xor") -> Path:
    (run,) = [p for p in (root / "logs" / task / "runs").iterdir() if p.is_dir()]
    return run


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """Nobody logged in to W&B (no WANDB_API_KEY, WANDB_MODE, or netrc key), its caches and settings under tmp_path."""
    for key in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "netrc").write_text("")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    for key, sub in (("WANDB_CONFIG_DIR", "wandb_config"), ("WANDB_CACHE_DIR", "wandb_cache"),
                     ("WANDB_DATA_DIR", "wandb_data")):
        monkeypatch.setenv(key, str(tmp_path / sub))


# ---- the tests ------------------------------------------------------------------------------------------------------
def test_mlflow_server_records_the_run_and_a_resume_continues_it(mlflow_server, tmp_path, offline_wandb):
    """Four loggers at once against the server; then ckpt_path=last: the same MLflow run (steps following on, params
    kept, checkpoints logged again) and the same W&B run id (W&B writes a second offline segment of it)."""
    root = tmp_path / "root"
    root.mkdir()
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    args = [*XOR, "logger=[tensorboard,csv,mlflow,wandb]"]
    r = shared_server().run(args, cwd=root, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = _only_run_dir(root)
    ids = json.loads((run_dir / "trackers.json").read_text())
    client = MlflowClient(mlflow_server)
    run = client.get_run(ids["mlflow"]["run_id"])
    assert ids["mlflow"]["tracking_uri"] == mlflow_server
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    assert client.get_experiment(run.info.experiment_id).name == "mlp_xor"
    params = run.data.params
    assert params["optimizer._target_"] == "torch.optim.Adam" and params["optimizer.lr"] == "0.05"
    assert params["model.net.hidden"] == "[5]" and params["seed"] == "42" and params["ckpt_path"] == "None"
    assert params["paths.output_dir"] == str(run_dir)  # resolved, not ${hydra:runtime.output_dir}
    assert not any(k.startswith("hydra") for k in params)
    result = json.loads((run_dir / "result.json").read_text())
    assert run.data.metrics["val/loss"] == pytest.approx(result["last"])
    assert run.data.metrics["test/acc"] == pytest.approx(result["test"]["test/acc"])
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert len(steps) >= 2 and max(steps) <= result["steps"]
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
    assert arts == {"checkpoints/best.ckpt", "checkpoints/last.ckpt"}
    got = Path(client.download_artifacts(run.info.run_id, "checkpoints/last.ckpt", str(tmp_path)))
    assert got.read_bytes() == (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    assert (run_dir / "csv" / "metrics.csv").is_file() and list(run_dir.glob("events.out.tfevents.*"))
    (first_wandb,) = wandb_runs(run_dir)
    assert first_wandb == {"id": ids["wandb"]["id"], "offline": True, "exit_code": 0}

    r = shared_server().run([*args, "ckpt_path=last", "trainer.max_epochs=2"], cwd=root, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _only_run_dir(root) == run_dir  # resumed in its own run dir
    assert json.loads((run_dir / "trackers.json").read_text()) == ids
    (again,) = client.search_runs([run.info.experiment_id])  # no second run
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert again.data.params == params  # MLflow keeps a run's params: the resumed run adds none, changes none
    more = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    resumed = json.loads((run_dir / "result.json").read_text())
    assert resumed["steps"] > result["steps"] and max(more) > max(steps) and set(steps) <= set(more)
    got = Path(client.download_artifacts(run.info.run_id, "checkpoints/last.ckpt", str(tmp_path / "again")))
    assert got.read_bytes() == (run_dir / "checkpoints" / "last.ckpt").read_bytes()  # the resumed run's, logged again
    segments = wandb_runs(run_dir)
    assert [s["id"] for s in segments] == [ids["wandb"]["id"]] * 2 and all(s["exit_code"] == 0 for s in segments)


def test_multirun_gives_each_job_its_own_mlflow_and_wandb_run(tmp_path, offline_wandb):
    """MLflow's default store (logs/mlflow.db, artifacts in logs/mlartifacts, no ./mlruns) and W&B offline because
    nobody is logged in: two jobs in one process, two MLflow runs and two W&B runs, each finished at its job's end."""
    r = shared_server().run(["-m", *XOR, "logger=[mlflow,wandb]", "seed=1,2"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "logs" / "mlflow.db").is_file() and not (tmp_path / "mlruns").exists()
    (sweep,) = (tmp_path / "logs" / "mlp_xor" / "multiruns").iterdir()
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir() and (d / "result.json").is_file())
    assert len(jobs) == 2
    client = MlflowClient(f"sqlite:///{tmp_path / 'logs' / 'mlflow.db'}")
    seen = set()
    for job, seed in zip(jobs, ("1", "2")):
        ids = json.loads((job / "trackers.json").read_text())
        run = client.get_run(ids["mlflow"]["run_id"])
        assert run.info.status == "FINISHED" and run.data.params["seed"] == seed
        assert run.info.run_name == f"{sweep.name}/{job.name}"
        artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
        assert artifacts.is_relative_to(tmp_path / "logs" / "mlartifacts" / "mlp_xor")
        assert {p.name for p in (artifacts / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
        (w,) = wandb_runs(job)
        assert w == {"id": ids["wandb"]["id"], "offline": True, "exit_code": 0}
        seen |= {ids["mlflow"]["run_id"], w["id"]}
    assert len(seen) == 4


def test_runs_started_together_share_a_new_sqlite_store(tmp_path, offline_wandb):
    """The jobs of a parallel sweep start at once: two runs forked within milliseconds of each other both create the
    same new logs/mlflow.db and the same experiment (dlf.tracking.store_lock); without the lock the two failed with
    "OperationalError: table _alembic_tmp_<table> already exists" (2 of 2 tries)."""
    rs = shared_server().run_together([([*XOR, "logger=mlflow"], tmp_path)] * 2)
    assert [r.returncode for r in rs] == [0, 0], [r.stderr[-2000:] for r in rs]
    client = MlflowClient(f"sqlite:///{tmp_path / 'logs' / 'mlflow.db'}")
    (experiment,) = client.search_experiments(filter_string="name = 'mlp_xor'")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert not any("INFO mlflow" in r.stderr for r in rs)  # MLflow's INFO lines stay off the console


def test_an_interrupted_run_resumed_finishes_the_same_runs(tmp_path, offline_wandb):
    """SIGTERM at step 70 (exit 143, last.ckpt written): the MLflow run is FAILED and the W&B run ends with exit code
    1; ckpt_path=last runs to the end in the same MLflow run, now FINISHED, and the same W&B run, now exit code 0."""
    kill = ["+callbacks.kill._target_=killers.KillAt", "+callbacks.kill.step=70", "+callbacks.kill.sig=SIGTERM"]
    args = [*XOR, "trainer.max_epochs=2", "logger=[mlflow,wandb]"]
    r = shared_server().run([*args, *kill], cwd=tmp_path)
    assert r.returncode == 143, r.stderr[-3000:]
    run_dir = _only_run_dir(tmp_path)
    ids = json.loads((run_dir / "trackers.json").read_text())
    client = MlflowClient(f"sqlite:///{tmp_path / 'logs' / 'mlflow.db'}")
    run = client.get_run(ids["mlflow"]["run_id"])
    assert run.info.status == "FAILED"
    assert max(m.step for m in client.get_metric_history(run.info.run_id, "train/loss")) < 70
    assert wandb_runs(run_dir) == [{"id": ids["wandb"]["id"], "offline": True, "exit_code": 1}]

    r = shared_server().run([*args, "ckpt_path=last"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((run_dir / "trackers.json").read_text()) == ids
    (run,) = client.search_runs([run.info.experiment_id])
    assert run.info.run_id == ids["mlflow"]["run_id"] and run.info.status == "FINISHED"
    assert max(m.step for m in client.get_metric_history(run.info.run_id, "train/loss")) > 70
    assert [w["exit_code"] for w in wandb_runs(run_dir)] == [1, 0]
    assert {w["id"] for w in wandb_runs(run_dir)} == {ids["wandb"]["id"]}


def test_wandb_is_offline_unless_logged_in(tmp_path, monkeypatch):
    from dlf.tracking import wandb_mode

    for key in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine example.org login me password x\n")
    monkeypatch.setenv("NETRC", str(netrc))
    assert wandb_mode() == "offline"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password 0123456789abcdef\n")  # what `wandb login` writes
    assert wandb_mode() is None  # W&B decides: online
    netrc.write_text("")
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef")
    assert wandb_mode() is None
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("WANDB_MODE", "disabled")  # the user's own choice is W&B's to read
    assert wandb_mode() is None


def _without(packages: str) -> dict:
    return {"PYTHONPATH": os.pathsep.join([str(WITHOUT), str(ROOT / "src"), str(ROOT / "tests")]),
            "DLF_TEST_WITHOUT": packages}


def test_without_packages_hides_them(tmp_path):
    """The simulation the next test relies on: the packages are installed, and that Python cannot see them."""
    code = ("import importlib.util, pkgutil, hydra_plugins\n"
            "try:\n    found = importlib.util.find_spec('mlflow') is not None\nexcept ImportError:\n    found = False\n"
            "plugins = [m.name for m in pkgutil.walk_packages(hydra_plugins.__path__, 'hydra_plugins.')]\n"
            "print(found, 'hydra_plugins.hydra_optuna_sweeper' in plugins)\n"
            "import mlflow\n")
    seen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, **_without("")})
    assert seen.returncode == 0 and seen.stdout.split() == ["True", "True"], seen.stderr
    hidden = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, **_without("mlflow,hydra_plugins.hydra_optuna_sweeper")})
    assert hidden.stdout.split() == ["False", "False"], hidden.stderr
    assert hidden.returncode == 1 and "ModuleNotFoundError: No module named 'mlflow'" in hidden.stderr


PLUGIN = 'is a Hydra plugin ({}) that is not installed in this Python: pip install -e ".[sweep]" (the sweeper and ' \
         "launchers of docs/sweeps.md)"
MISSING = [
    (["logger=mlflow"], "mlflow",
     'logger.mlflow (dlf.tracking.MLFlowLogger) needs the mlflow package, which is not installed in this Python: '
     'pip install -e ".[mlflow]" (or pip install mlflow), or choose another logger'),
    (["-m", "logger=[csv,wandb]", "seed=1,2"], "wandb",  # a multirun: one line before any job, not one per job
     'logger.wandb (dlf.tracking.WandbLogger) needs the wandb package, which is not installed in this Python: '
     'pip install -e ".[wandb]" (or pip install wandb), or choose another logger'),
    (["-m", "hparams_search=mlp_xor_optuna"], "hydra_plugins.hydra_optuna_sweeper,optuna",
     "hydra/sweeper=optuna " + PLUGIN.format("hydra-optuna-sweeper")),
    (["-m", "hydra/launcher=joblib", "seed=1,2"], "hydra_plugins.hydra_joblib_launcher",
     "hydra/launcher=joblib " + PLUGIN.format("hydra-joblib-launcher")),
    (["-m", "hydra/launcher=slurm", "seed=1,2"], "hydra_plugins.hydra_submitit_launcher,submitit",
     "hydra/launcher=submitit_slurm " + PLUGIN.format("hydra-submitit-launcher")),
]


@pytest.mark.parametrize("args,packages,line", MISSING, ids=[m[1].split(",")[0] + ":" + m[0][-1] for m in MISSING])
def test_a_missing_package_is_one_line_naming_the_extra(tmp_path, args, packages, line):
    r = run_train(args, cwd=tmp_path, env=_without(packages), timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [f"dlf: error: {line}"]
    assert not (tmp_path / "logs").exists()  # refused before any run dir or job
