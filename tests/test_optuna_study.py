"""A shared Optuna study (hparams_search configs: hydra.sweeper.storage, SQLite at logs/<task>/optuna.db by default):
two sweep processes at once share its trials, a killed search continues with ckpt_path=last, the median pruner, and
the same study on PostgreSQL (scripts/services.sh). Real `train.py` processes throughout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_server import ROOT, cli_env

optuna = pytest.importorskip("optuna")
pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

FAST = ["trainer.max_epochs=1", "data.repeats=10", "+hydra.callbacks.sweep_summary.figure=false"]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), "-m", "hparams_search=mlp_xor_optuna", *args],
                            cwd=cwd, env=cli_env(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def trials(storage: str, name: str = "mlp_xor") -> list:
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def table(ts: list) -> str:
    """The study's trials as a table (printed: the note of the two-process test shows it)."""
    rows = [f"{t.number:>3} {t.state.name:<9} {t.value if t.value is not None else '':<22} {t.params}" for t in ts]
    return "\n".join(["  # state     value                  params", *rows])


def job_numbers(cwd: Path) -> list[int]:
    return sorted(int(d.name.split("_", 1)[0]) for d in cwd.glob("logs/mlp_xor/multiruns/*/*") if d.is_dir()
                  and d.name[0].isdigit())


def test_a_fresh_sqlite_study_opens(tmp_path):
    """optuna 2.10.1 on SQLAlchemy 2 failed here (AssertionError in get_current_version): .[sweep] pins sqlalchemy<2."""
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path}/optuna.db", load_if_exists=True)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/optuna.db").trials) == 2


def _two_at_once(tmp_path: Path, extra: list[str], storage: str, name: str = "mlp_xor") -> list:
    procs = [start(["hydra.sweeper.n_trials=6", *FAST, *extra], tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    ts = trials(storage, name)
    print(table(ts))
    assert sorted(t.number for t in ts) == list(range(6)), table(ts)  # n_trials over the study, no number twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in ts), table(ts)
    ran = [out.count("Launching 1 jobs locally") for out, _ in outs]
    assert sum(ran) == 6, ran  # the six split between them (one may start after the other ran them all)
    return ts


def test_two_sweeps_at_once_share_one_study(tmp_path):
    """Two `-m hparams_search=mlp_xor_optuna hydra.sweeper.n_trials=6` processes started together on the default
    SQLite study: six trials in all, numbered 0-5 once each, split between them; each job dir starts with its trial
    number; the study file is logs/mlp_xor/optuna.db. About 40 s."""
    db = tmp_path / "logs" / "mlp_xor" / "optuna.db"
    _two_at_once(tmp_path, [], f"sqlite:///{db}")
    assert job_numbers(tmp_path) == list(range(6))
    r = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", "hparams_search=mlp_xor_optuna",
                        "hydra.sweeper.n_trials=6", *FAST], cwd=tmp_path, env=cli_env(tmp_path), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "Launching" not in r.stdout, r.stderr[-2000:]  # the study is full: nothing to run
    assert "holds its 6 trials already: nothing to run" in r.stdout
    assert len(trials(f"sqlite:///{db}")) == 6


@pytest.mark.slow
def test_a_killed_search_continues_with_ckpt_path_last(tmp_path):
    """A search SIGKILLed (its whole process group) in trial 1 at step 10, continued with the same command plus
    ckpt_path=last in its sweep dir: trial 0 is not run again, trial 1 runs again under its number from its own
    last.ckpt and ends with the weights of the same trial left alone, trial 2 is asked; three COMPLETE trials.
    About 90 s."""
    from test_resume import assert_same
    from test_sweep_resume import GRID, jobs, sweep

    base = [a for a in GRID if not a.startswith("optimizer.lr=")] + ["hparams_search=mlp_xor_optuna",
                                                                       "hydra.sweeper.n_trials=3"]
    alone = tmp_path / "alone"
    alone.mkdir()
    assert sweep(base, alone, alone / "sweep").returncode == 0
    kill = ["+callbacks.kill._target_=killers.KillGroupAt", "+callbacks.kill.job=1", "+callbacks.kill.step=10",
            f"+callbacks.kill.marker={tmp_path}/fired"]
    r = sweep([*base, *kill], tmp_path, tmp_path / "sweep")
    assert r.returncode == -9 and (tmp_path / "fired").is_file(), r.stderr[-2000:]
    db = f"sqlite:///{tmp_path}/logs/mlp_xor/optuna.db"
    assert [t.state.name for t in trials(db)] == ["COMPLETE", "RUNNING"]
    r = sweep([*base, *kill, "ckpt_path=last"], tmp_path, tmp_path / "sweep")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "trial 1 was left running" in r.stdout and "dlf: job 1 resumes from" in r.stdout, r.stdout[-3000:]
    assert "dlf: job 0" not in r.stdout  # finished: not asked again
    ts = trials(db)
    assert [(t.number, t.state.name) for t in ts] == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE")], table(ts)
    got, want = jobs(tmp_path / "sweep"), jobs(alone / "sweep")
    assert sorted(got) == sorted(want) == [0, 1, 2]  # job dirs <trial>_<overrides>
    for n in got:
        a, b = (torch.load(d[n] / "checkpoints" / "last.ckpt", weights_only=True) for d in (want, got))
        assert_same(a["state_dict"], b["state_dict"], f"trial {n}")
    assert [t.value for t in ts] == [t.value for t in trials(f"sqlite:///{alone}/logs/mlp_xor/optuna.db")]


def test_median_pruner_stops_a_bad_trial(tmp_path):
    """callbacks.optuna_pruning.pruner=median: a trial whose val/loss at an epoch's validation is worse than the
    median of the earlier trials there stops, and the study marks it PRUNED. About 40 s."""
    args = ["hydra.sweeper.n_trials=6", "trainer.max_epochs=4", "data.repeats=10", "callbacks.optuna_pruning.pruner=median",
            "callbacks.optuna_pruning.n_startup_trials=2", "+hydra.callbacks.sweep_summary.figure=false"]
    p = start(args, tmp_path)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    ts = trials(f"sqlite:///{tmp_path}/logs/mlp_xor/optuna.db")
    print(table(ts))
    pruned = [t for t in ts if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all(t.number >= 2 for t in pruned), table(ts)
    assert all(t.intermediate_values for t in ts)  # every trial reported each validation
    assert "pruner stopped trial" in out
    t = pruned[0]
    assert max(t.intermediate_values) < max(max(s.intermediate_values) for s in ts if s.state.name == "COMPLETE")


@pytest.mark.slow
def test_two_sweeps_share_a_postgresql_study(tmp_path):
    """The same two processes on a study in PostgreSQL (scripts/services.sh up: 127.0.0.1:5432, role and database
    dlf): the multi-machine form. About 40 s."""
    pytest.importorskip("psycopg2")
    from doc_commands import all_commands

    readme = ("python train.py -m hparams_search=mlp_xor_optuna "
              "hydra.sweeper.storage=postgresql://dlf:dlf@127.0.0.1:5432/dlf")  # README's "Scaling out" row
    assert readme in {c.text for c in all_commands()}
    url = os.environ.get("DLF_TEST_POSTGRES", readme.split("storage=")[1])
    try:
        optuna.storages.RDBStorage(url)
    except Exception as e:  # noqa: BLE001
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(
            f"no PostgreSQL at {url} ({type(e).__name__}): run scripts/services.sh up as root")
    name = f"dlf-test-{os.getpid()}-{tmp_path.name}"
    _two_at_once(tmp_path, [f"hydra.sweeper.storage={url}", f"hydra.sweeper.study_name={name}"], url, name)
    assert not (tmp_path / "logs" / "mlp_xor" / "optuna.db").exists()
    optuna.delete_study(study_name=name, storage=url)
