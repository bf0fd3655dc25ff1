"""The entry point (dlf.run.train): what the task returns and records (result.json), and how a sweep with a failed job ends."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from cli_server import cli_env, run_train, shared_server
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from dlf.run.train import CONFIG_DIR

XOR = ["model=mlp_xor", "trainer=cpu", "logger=none", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
       "trainer.enable_model_summary=false", "callbacks.model_summary=null", "callbacks.cost_curve=null"]


def _dlf(args: list[str], cwd: Path):
    """`python train.py <args>` as a forked child of the tests' CLI server (imports paid once; same cli(), own exit)."""
    return shared_server().run(args, cwd=cwd)


KEYS = {"status", "error", "monitor", "mode", "best", "last", "steps", "batches", "test", "wall_s", "overrides"}


def _task_in_process(overrides: list[str], out: Path):
    """Call the Hydra task function as Hydra's run_job would: HydraConfig set, the config without its hydra node."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from dlf.run.cli import task

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
    return task(task_cfg)


def test_task_returns_the_best_monitored_value(tmp_path):
    """The value a sweeper optimizes is the checkpoint callback's best `monitor` value, also written to result.json."""
    value = _task_in_process([*XOR, "callbacks.step_checkpoint=null"], tmp_path)
    res = json.loads((tmp_path / "result.json").read_text())
    assert set(res) == KEYS
    assert res["status"] == "ok" and res["error"] is None and res["monitor"] == "val/loss" and res["mode"] == "min"
    assert isinstance(value, float) and value == res["best"] and res["best"] <= res["last"]
    assert res["steps"] > 0 and res["wall_s"] > 0 and "model=mlp_xor" in res["overrides"]
    assert res["batches"] == res["steps"]  # one optimizer step a batch
    assert {"test/loss", "test/acc", "test/solved"} <= set(res["test"]) and 0 <= res["test"]["test/acc"] <= 1


def test_gan_result_counts_batches_beside_optimizer_steps(tmp_path):
    """The GAN's trainer.max_steps counts both optimizers' steps (d_steps + 1 per d_steps batches): max_steps=10 trains
    5 batches, and result.json says so (`batches`)."""
    r = shared_server().run(["model=gan", "trainer.max_steps=10", "logger=none", "trainer=cpu", "hydra.run.dir=run",
                             "trainer.enable_progress_bar=false", "test=false"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    assert res["steps"] == 10 and res["batches"] == 5, res


def test_task_without_checkpoint_returns_the_last_value(tmp_path):
    value = _task_in_process([*XOR, "debug=fast"], tmp_path)
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["best"] is None and value == res["last"] and math.isfinite(value)


def test_sweep_goes_on_after_a_failed_job_and_exits_non_zero(tmp_path):
    """Job 0 fails (an unknown activation, found when the model is built): job 1 still runs; the multirun exits 1."""
    r = _dlf(["-m", *XOR, "model.net.activation=swish,relu", "hydra.sweep.dir=sweep"], cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    failed = json.loads(next((tmp_path / "sweep").glob("0_*/result.json")).read_text())  # job dirs: <n>_<overrides>
    ok = json.loads(next((tmp_path / "sweep").glob("1_*/result.json")).read_text())
    assert failed["status"] == "failed" and "swish" in failed["error"] and failed["best"] is None
    assert "model.net.activation=swish" in failed["overrides"]
    assert ok["status"] == "ok" and ok["best"] is not None and ok["steps"] > 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("dlf: error: 1 of 2 jobs of the sweep failed, e.g. job 0 (") and "swish" in last, last
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("dlf: error:")]) == 1, r.stderr[-3000:]


def test_single_run_failure_is_one_line_and_recorded(tmp_path):
    r = run_train([*XOR, "model.net.activation=swish", "hydra.run.dir=run"], cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("dlf: error: model.net.activation")
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    assert res["status"] == "failed" and "swish" in res["error"]


# --- the command line is Hydra's: dlf against a bare @hydra.main app over the same config tree ----------------------
BARE = Path(__file__).resolve().parent / "bare_app" / "train.py"
D = str(CONFIG_DIR)
# (flags and overrides, compare stdout too): every Hydra 1.3 flag and the override grammar, with valid values
TABLE = [
    (["--cfg", "job"], True), (["--cfg", "hydra"], True), (["--cfg", "all"], True), (["--cfg", "job", "--resolve"], True),
    (["--cfg=job", "--package", "optimizer"], True), (["-p", "model", "--cfg", "job", "model=lstm"], True),
    (["-cn", "train", "--cfg", "job"], True), (["--config-name", "train", "--cfg", "job"], True),
    (["--config-name=train", "--cfg", "job"], True), (["-cp", D, "--cfg", "job"], True),
    (["--config-path", D, "--cfg", "job"], True), (["-cd", D, "--cfg", "job"], True), (["--config-dir", D, "--cfg", "job"], True),
    (["--help"], True), (["--help", "model=lstm"], True), (["--hydra-help"], False), (["--info"], True),
    (["--info", "all"], True), (["--info", "config"], True), (["--info", "defaults"], True),
    (["--info", "defaults-tree"], True), (["--info", "searchpath"], True), (["--info", "plugins"], False),
    (["--shell-completion", "install=bash"], False), (["-sc", "uninstall=bash"], False),
    (["--cfg", "job", "optimizer.lr=0.1", "optimizer.betas=[0.8,0.99]", "trainer.max_epochs=3"], True),
    (["--cfg", "job", "+extra={a:1,b:[x,'y z']}", "++optimizer.lr=0.2", "++brand_new=3"], True),
    (["--cfg", "job", "~scheduler", "~optimizer.weight_decay", "task_name='my run'", 'seed="7"'], True),
    (["--cfg", "job", "model=cnn", "optimizer=sgd", "data=digits", "debug=fast"], True),
    (["--cfg", "job", "experiment=xor_seed", "+trainer.profiler=null", "seed=${oc.env:NO_SUCH_VAR,3}"], True),
    (["--cfg", "hydra", "hydra/launcher=joblib", "hydra/sweeper=optuna", "hydra.job.chdir=false"], True),
    (["--cfg", "job", "--resolve", "model=gan"], True),
]


def _call(main, args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """Run a hydra.main app in this process with `args` as its command line; returns (exit code, stdout)."""
    import logging

    for lg in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:  # as in a fresh process
        if isinstance(lg, logging.Logger):
            lg.handlers.clear()
            lg.setLevel(logging.NOTSET)
            lg.propagate, lg.disabled = True, False
    logging.getLogger().setLevel(logging.WARNING)
    monkeypatch.setattr(sys, "argv", ["train.py", *args])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:  # Hydra left root at INFO with a handler on this test's captured stderr, which pytest closes: an INFO
        root = logging.getLogger()  # line logged at exit (torch's fake-tensor statistics) would meet a closed file
        root.handlers.clear()
        root.setLevel(logging.WARNING)
    return code, capsys.readouterr().out


@pytest.mark.parametrize("args,same_output", TABLE, ids=[" ".join(a)[:60] for a, _ in TABLE])
def test_flags_and_overrides_as_in_a_bare_hydra_app(args, same_output, monkeypatch, capsys, tmp_path):
    from dlf.run.cli import cli

    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("train", BARE)  # the job name Hydra derives
    bare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bare)
    ours, out = _call(cli, args, monkeypatch, capsys)
    theirs, bare_out = _call(bare.main, args, monkeypatch, capsys)
    assert (ours, theirs) == (0, 0)
    assert out.strip(), "nothing printed"
    if same_output:
        assert out == bare_out


def test_help_says_what_dlf_is_and_how_to_run_and_sweep(monkeypatch, capsys, tmp_path):
    """--help: dlf's header (the command, a sweep), every option of the groups a user picks, the composed config, and
    the footer saying that `schema` is not an option to pick."""
    from dlf.run.cli import cli

    monkeypatch.chdir(tmp_path)
    code, out = _call(cli, ["--help", "model=lstm"], monkeypatch, capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "dlf, the deep-learning foundations model zoo" and "is powered by Hydra" not in out
    assert any(ln.startswith("python train.py -m ") and "seed=1,2,3" in ln for ln in lines[:4])
    assert "model: cnn, cnn1d, dcgan, gan, lstm, mlp, mlp_xor, rnn" in lines
    assert "optimizer: adagrad, adam, momentum, rmsprop, sgd" in lines
    assert "  _target_: dlf.systems.sequence.SequenceSystem" in lines  # the config composed with model=lstm
    (foot,) = [i for i, ln in enumerate(lines) if ln.startswith("`schema` holds the typed checks")]
    assert foot > lines.index("== Config ==") and "--hydra-help" in lines[foot + 1]


# sweeps that run (cheap: debug=fast on XOR); the jobs' overrides must be the ones the bare app gets
SWEEPS = [
    ["optimizer=glob(ada*)", "optimizer.lr=sort(0.3,0.1)", "seed=range(1,2)"],
    ["optimizer.lr=tag(fast,choice(0.1,0.2))", "seed=shuffle(1,2)", "+note=a,b", "~scheduler"],
]


def _job_overrides(sweep: Path) -> list[list[str]]:
    from omegaconf import OmegaConf

    return sorted(sorted(OmegaConf.load(f)) for f in sweep.glob("*/.hydra/overrides.yaml"))


@pytest.mark.parametrize("sweep", SWEEPS, ids=["glob-sort-range", "tag-choice-shuffle-plus-delete"])
def test_sweep_grammar_as_in_a_bare_hydra_app(sweep, tmp_path):
    base = ["model=mlp_xor", "debug=fast", "trainer=cpu"]
    r = _dlf(["-m", *base, *sweep, "hydra.sweep.dir=ours"], cwd=tmp_path)
    bare = subprocess.run([sys.executable, str(BARE), "-m", *base, *sweep, "hydra.sweep.dir=bare"], cwd=tmp_path,
                          env=cli_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == bare.returncode == 0, (r.stderr[-2000:], bare.stderr[-2000:])
    jobs = _job_overrides(tmp_path / "ours")
    assert jobs == _job_overrides(tmp_path / "bare") and len(jobs) >= 4
    results = [json.loads(f.read_text()) for f in (tmp_path / "ours").glob("*/result.json")]
    assert len(results) == len(jobs) and all(res["status"] == "ok" for res in results)


def test_optuna_sweep_optimizes_the_returned_metric(tmp_path):
    """`interval()` (which the basic sweeper cannot enumerate) through the Optuna sweeper: every trial gets a value."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    r = _dlf(["-m", "model=mlp_xor", "debug=fast", "trainer=cpu", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2",
                   "hydra.sweeper.sampler.seed=1", "optimizer.lr=interval(0.01,0.1)", "hydra.sweep.dir=sweep"],
                  cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    from omegaconf import OmegaConf

    best = OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml")
    lasts = [json.loads(f.read_text())["last"] for f in (tmp_path / "sweep").glob("*/result.json")]
    assert len(lasts) == 2 and best.best_value == min(lasts)


def test_help_cfg_info_and_config_errors_import_no_torch(tmp_path):
    """--help, --cfg, --info and config errors answer without importing torch or Lightning."""
    code = """
import sys
from dlf.run.cli import cli
codes = []
for args in (["--help"], ["--cfg", "job"], ["--info", "defaults"], ["model=mlpp"], ["optimizer.lr=-1"],
             ["optimizer.lrr=1"], ["model=mlp", "ckpt_path=last"]):
    sys.argv = ["train.py", *args]
    try:
        cli()
        codes.append(0)
    except SystemExit as e:
        codes.append(e.code)
print("RESULT", codes, sorted(m for m in ("torch", "lightning") if m in sys.modules))
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(tmp_path), capture_output=True,
                       text=True, timeout=300)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT")]
    assert line == ["RESULT [0, 0, 0, 2, 2, 2, 2] []"], (r.stdout[-2000:], r.stderr[-2000:])


# --- start-up, not later: monitor=, and a resumed run's record ------------------------------------------------------
def test_monitor_naming_no_logged_metric_fails_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _task_in_process([*XOR, "monitor=val/accuracy"], tmp_path)
    assert e.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("dlf: error: monitor=val/accuracy is not a metric") and "val/acc, val/loss" in line, line
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["status"] == "failed" and res["steps"] == 0, res  # today's check fires after a whole training epoch


@pytest.mark.parametrize("model", ["mlp_xor", "rnn", "gan", "dcgan"])  # dcgan: digits, with the Fréchet distance
def test_declared_metric_names_are_the_logged_ones(model, tmp_path, monkeypatch):
    """A system's metric_names() holds every metric a run logs, and its config's default monitor."""
    from dlf.run.train import run

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}", "debug=fast", "trainer=cpu", "callbacks.model_summary=null",
                                           "callbacks.cost_curve=null"])
    with open_dict(cfg):
        cfg.paths.output_dir, cfg.paths.log_dir = str(tmp_path), str(tmp_path / "logs")
        cfg.paths.data_dir = str(tmp_path / "data")
    captured = {}
    import dlf.run.train as train

    original = train._check_monitor
    monkeypatch.setattr(train, "_check_monitor",
                        lambda m, monitor: captured.update(names=m.metric_names()) or original(m, monitor))
    logged = set(run(cfg))
    names = captured["names"]
    assert logged and logged <= names, logged - names
    assert cfg.monitor in logged


def test_resume_keeps_the_first_config_and_numbers_each_resume(tmp_path):
    """ckpt_path=last continues in the run dir; .hydra/config.yaml stays the first run's; .hydra/resume-<n>/ holds each
    resume's overrides and config."""
    from cli_server import shared_server
    from omegaconf import OmegaConf

    srv, base = shared_server(), [*XOR, "trainer.max_epochs=1"]
    assert srv.run(base, cwd=tmp_path).returncode == 0
    (run,) = (tmp_path / "logs" / "mlp_xor" / "runs").iterdir()
    first = (run / ".hydra" / "config.yaml").read_bytes()
    for n, epochs in ((1, 2), (2, 3)):
        r = srv.run([*XOR, f"trainer.max_epochs={epochs}", "ckpt_path=last"], cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        assert len(list((tmp_path / "logs" / "mlp_xor" / "runs").iterdir())) == 1, "a resume makes no new run dir"
        assert (run / ".hydra" / "config.yaml").read_bytes() == first
        rec = run / ".hydra" / f"resume-{n}"
        assert f"trainer.max_epochs={epochs}" in OmegaConf.load(rec / "overrides.yaml")
        cfg = OmegaConf.load(rec / "config.yaml")
        assert cfg.trainer.max_epochs == epochs and cfg.ckpt_path == str(run / "checkpoints" / "last.ckpt")
    assert json.loads((run / "result.json").read_text())["steps"] == 3 * 50  # data.repeats=50 steps an epoch


def test_experimental_rerun_as_in_a_bare_hydra_app(tmp_path):
    """--experimental-rerun <run>/.hydra/config.pickle (Hydra's PickleJobInfoCallback) reruns the job, in both apps."""
    pickle = "+hydra.callbacks.save_job_info._target_=hydra.experimental.callbacks.PickleJobInfoCallback"
    r = _dlf([*XOR, "debug=fast", pickle, "hydra.run.dir=run"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    saved = tmp_path / "run" / ".hydra" / "config.pickle"
    (tmp_path / "run" / "result.json").unlink()
    ours = _dlf(["--experimental-rerun", str(saved)], cwd=tmp_path)
    bare = subprocess.run([sys.executable, str(BARE), "--experimental-rerun", str(saved)], cwd=tmp_path,
                          env=cli_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert ours.returncode == bare.returncode == 0, (ours.stderr[-2000:], bare.stderr[-2000:])
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "ok"  # the rerun wrote it again
