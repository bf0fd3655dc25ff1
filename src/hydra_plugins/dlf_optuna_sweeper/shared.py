"""A search whose study lives in `hydra.sweeper.storage` (SQLite by default, `${paths.log_dir}/<task>/optuna.db`, or
PostgreSQL): every process of the task, on this machine or another, asks its trials of the same study.

The plugin's loop ran `n_trials` new trials in each process and numbered its job dirs from 0 in each; here (one
objective, any sampler but the grid, which keeps the plugin's loop):
- `n_trials` is counted over the study: a process asks a trial only while the study holds fewer than n_trials (finished,
  failed, pruned, or running in another process), so two sweeps started at once share the work;
- a job is numbered by its trial (`hydra.job.num` = trial.number), so its job dir `<trial>_<overrides>` is unique over
  the study, and two processes writing into one sweep dir never share a job dir;
- with `ckpt_path=last` (a killed search continued: `python train.py -m <same> hydra.sweep.dir=<dir> ckpt_path=last`)
  the trials a killed process left RUNNING run again under their own number, so each resumes from its own job dir's
  last.ckpt (dlf.run.sweep.continue_job) and is told to Optuna under that number; finished trials are kept, and only
  the missing ones are asked;
- a seeded sampler draws each trial from (seed + its number), so two processes do not draw the same trials;
- a trial that dlf's OptunaPruning callback stopped (`callbacks.optuna_pruning.pruner=median`) is told as PRUNED.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path

from omegaconf import OmegaConf

# Hydra imports every module of hydra_plugins at start-up: optuna is imported by the functions that use it.
log = logging.getLogger(__name__)
PRUNED_ATTR = "dlf_pruned_at_step"  # system attr the pruning callback sets on a trial it stopped


def applies(impl) -> bool:
    """The shared loop runs single-objective searches; the grid sampler and several objectives keep the plugin's."""
    import optuna

    grid = isinstance(impl.sampler, functools.partial) and impl.sampler.func == optuna.samplers.GridSampler
    return not grid and len(impl._get_directions()) == 1


def storage(url):
    """The storage URL, with a SQLite file's folder made first (SQLite makes the file, not its folder)."""
    if isinstance(url, str) and url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return url


def open_study(impl):
    """The study, made or loaded. Two processes starting on a new database at once both make its tables: on SQLite one
    at a time (a lock file beside it); elsewhere the loser of the race (IntegrityError on alembic_version) tries again
    and finds the tables made."""
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError

    from dlf.faults import sqlite_setup_lock

    url = storage(impl.storage)
    for attempt in range(5):
        try:
            with sqlite_setup_lock(url):
                return optuna.create_study(study_name=impl.study_name, storage=url, sampler=impl.sampler,
                                           direction=impl._get_directions()[0], load_if_exists=True)
        except (IntegrityError, OperationalError):
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


def sweep(impl, arguments: list[str]) -> None:
    """The search: ask, launch and tell until the study holds n_trials; then the best trial (as the plugin)."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
    from optuna.trial import TrialState

    impl._process_searchspace_config()
    space, fixed = create_params_from_overrides([*impl._parse_sweeper_params_config(), *arguments])
    space = {**(impl.search_space_distributions or {}), **space}
    for name in fixed:
        space.pop(name, None)
    study = open_study(impl)
    log.info(f"Study name: {study.study_name}; storage: {impl.storage or 'in memory'}; n_trials: {impl.n_trials} "
             "over the study")
    again, asked = _left_running(study, impl.config), 0
    while True:
        batch, again = again[: impl.n_jobs], again[impl.n_jobs:]
        if not batch:
            room = impl.n_trials - sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))
            if room <= 0:
                break
            batch = [study.ask() for _ in range(min(impl.n_jobs, room))]
            asked += len(batch)
            _seed_for(impl, batch[0].number)
        returns = _launch(impl, batch, impl._configure_trials(batch, space, fixed))
        failures = [_tell(study, trial, ret, impl.storage) for trial, ret in zip(batch, returns)]
        if sum(failures) / len(returns) > impl.max_failure_rate:
            for ret in returns:
                ret.return_value  # noqa: B018 - raises the failed job's error, as the plugin does
    if not asked:
        print(f"dlf: study {study.study_name} ({impl.storage}) holds its {impl.n_trials} trials already: nothing to run "
              "(raise hydra.sweeper.n_trials to ask for more, or name a new hydra.sweeper.study_name)")
    Path(str(impl.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    best = study.best_trial  # ValueError when no trial completed (dlf's OptunaSweeper.sweep says so in one line)
    log.info(f"Best parameters: {best.params}")
    log.info(f"Best value: {best.value}")
    OmegaConf.save(OmegaConf.create({"name": "optuna", "best_params": best.params, "best_value": best.value,
                                     "best_trial": best.number}),
                   f"{impl.config.hydra.sweep.dir}/optimization_results.yaml")


def _seed_for(impl, number: int) -> None:
    """A seeded sampler draws from (seed + trial number): the same trials every time for one process, and two
    processes on one study do not both draw the seed's first trials. Optuna 2.10's samplers keep their generator in
    `_rng` (TPE's random start-up sampler in `_random_sampler._rng`) and offer only an unseeded reseed_rng()."""
    import numpy as np

    seed = OmegaConf.select(impl.config, "hydra.sweeper.sampler.seed", default=None)
    if seed is None:
        return
    for sampler in (impl.sampler, getattr(impl.sampler, "_random_sampler", None)):
        if sampler is not None and hasattr(sampler, "_rng"):
            sampler._rng = np.random.RandomState((int(seed) + number) % 2**32)


def _left_running(study, config) -> list:
    """Trials a killed process left RUNNING, to run again under their own numbers: only when the search is continued
    (ckpt_path=last), since otherwise a RUNNING trial may be another live process's."""
    import optuna
    from optuna.trial import TrialState

    if str(config.get("ckpt_path")) != "last":
        return []
    left = [optuna.trial.Trial(study, t._trial_id) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    for t in left:
        print(f"dlf: trial {t.number} was left running by a stopped search: it runs again, from its own last.ckpt")
    return left


def _launch(impl, trials: list, overrides) -> list:
    """Launch the trials' jobs numbered by their trials: one launch per run of consecutive trial numbers."""
    returns, i = [], 0
    while i < len(trials):
        j = i + 1
        while j < len(trials) and trials[j].number == trials[j - 1].number + 1:
            j += 1
        returns += list(impl.launcher.launch(overrides[i:j], initial_job_idx=trials[i].number))
        i = j
    return returns


def _tell(study, trial, ret, url) -> bool:
    """Tell Optuna how the trial's job ended: its value, PRUNED, or FAIL (returns True then)."""
    import optuna
    from optuna.trial import TrialState

    try:
        value = float(ret.return_value)  # a failed job (dlf_optuna_sweeper._FailedJob) raises its error here
    except Exception as e:  # noqa: BLE001
        study.tell(trial.number, state=TrialState.FAIL)
        log.warning(f"Failed experiment: {e}")
        return True
    # what the job wrote into the trial (the pruning callback's mark), from the storage itself: this process's study
    # caches the trials it asked
    seen = optuna.load_study(study_name=study.study_name, storage=url) if url else study
    frozen = next(t for t in seen.get_trials(deepcopy=False) if t.number == trial.number)
    if PRUNED_ATTR in frozen.system_attrs:
        study.tell(trial.number, state=TrialState.PRUNED)
        log.info(f"Trial {trial.number} pruned at step {frozen.system_attrs[PRUNED_ATTR]} (value {value})")
    else:
        study.tell(trial.number, value)
    return False
