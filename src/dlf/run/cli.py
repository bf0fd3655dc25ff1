"""The command line: `dlf-train` / `python train.py` is a plain `@hydra.main` app over dlf's configs, so every Hydra
flag and the whole override grammar work as Hydra documents them. This module owns the command line; dlf.run.train
owns the run. Around Hydra's app it adds:

- `Startup`, a Hydra callback (configs/hydra/default.yaml): before a single run's dir is made it checks the config and
  its checkpoint (`dlf.run.train.prepare`) and writes what it resolved into the config: `ckpt_path` (the file `last`
  named) and, for a resume, `hydra.run.dir` (the checkpoint's own run dir) with `hydra.output_subdir` at
  `.hydra/resume-<n>`, so the run's first `.hydra/config.yaml` is kept and every resume's lie beside it, numbered.
- `task`, Hydra's task function: `dlf.run.train.run`, then `<job dir>/result.json`, the monitored metric returned.
- What a failure means: `classify` (an error of the run: its status, one line and exit code) and `explain` (an error
  before the run: Hydra's composition errors, dlf's checks). Any error is one line `dlf: error: ...` and a non-zero
  exit; a multirun in which any job failed exits 1 after all jobs ran (from the jobs' result.json files, whatever
  launcher ran them).

Nothing here imports torch: `--help`, `--cfg`, `--info` and config errors answer in about a second.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import warnings
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

from dlf.errors import DlfError, message
from dlf.hydra_internals import skip_mode_compose
from dlf.run.checks import MOVED
from dlf.run.sweep import continue_job
from dlf.run.train import CONFIG_DIR, Outcome, prepare, run, write_result

# The Hydra plugins dlf's configs name (hparams_search=*, hydra/launcher=...): the package and the extra that installs it
PLUGINS = {"hydra/sweeper/optuna": ("hydra-optuna-sweeper", "sweep"),
           "hydra/launcher/joblib": ("hydra-joblib-launcher", "sweep"),
           "hydra/launcher/submitit_local": ("hydra-submitit-launcher", "sweep"),
           "hydra/launcher/submitit_slurm": ("hydra-submitit-launcher", "sweep")}
FAILED_JOBS: list[str] = []  # "job <n> (<overrides>): <error>" for each failed job of this process's multirun
JOBS_RUN: list[int] = [0]  # how many jobs of it wrote a result.json


def cli() -> None:
    """Console entry point (`dlf-train`, `python train.py`): a bare `@hydra.main` app with one-line errors."""
    import hydra
    from hydra.core.utils import setup_globals

    if not CONFIG_DIR.is_dir():
        fail(f"config dir {CONFIG_DIR} not found: reinstall dlf (`pip install -e .` from a clone, or `pip install dlf`)")
    full = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["DLF_FULL_ERROR"] = "1" if full == "1" else "0"  # what the user asked for (the task reads it)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing; dlf prints the one line below
    FAILED_JOBS.clear()
    # Lightning's "The `srun` command is available on your system but is not used" on any machine with Slurm (a login
    # node): a second line beside dlf's one-line errors; dlf's DDP checks name the set-ups that would hang without srun
    warnings.filterwarnings("ignore", message="The `srun` command is available on your system but is not used")
    setup_globals()  # ${hydra:...} and ${now:...}: Hydra registers them itself, except on --experimental-rerun
    try:
        with skip_mode_compose():  # Hydra would compose the config twice; once is enough (dlf.hydra_internals)
            hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")(task)()
    except Exception as e:  # noqa: BLE001 - one line, not a traceback
        if full == "1":
            raise
        fail(*explain(e))
    finally:
        os.environ.pop("DLF_FULL_ERROR", None)
        if full is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full
    if FAILED_JOBS:  # a multirun whose jobs all ran, some of them failed
        fail(f"{len(FAILED_JOBS)} of {JOBS_RUN[0]} jobs of the sweep failed, e.g. job {FAILED_JOBS[0]}: fix it and "
             "rerun those jobs (each job dir has a result.json; the others' results are kept)", 1)


class Startup(Callback):
    """Hydra callback: dlf's start-up checks before a single run makes its dir; a multirun's exit status."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        """Hydra turns an exception raised here into a warning and goes on: so a failed check ends the process itself,
        with its one line, before the run dir exists."""
        try:
            self._start_run(config)
        except Exception as e:  # noqa: BLE001
            if os.environ.get("DLF_FULL_ERROR", os.environ.get("HYDRA_FULL_ERROR")) == "1":
                import traceback

                traceback.print_exc()
            fail(*explain(e))

    def _start_run(self, config: DictConfig) -> None:
        from dlf.distributed import share_run_dir, slurm_requeued  # [ddp] one run dir for every rank (torchrun/srun)

        slurm_requeued(config)  # [ddp] a requeued Slurm job: ckpt_path = its own run dir's last.ckpt
        start = prepare(config)
        given = {str(o).split("=", 1)[0].lstrip("+~") for o in config.hydra.overrides.hydra}
        resume = start.run_dir is not None and config.get("train", True)
        with read_write(config), open_dict(config):
            if resume and "hydra.run.dir" not in given:
                config.hydra.run.dir = str(start.run_dir)  # continue where the interrupted run left its files
        share_run_dir(config, "hydra.run.dir" in given or resume)  # [ddp]
        with read_write(config), open_dict(config):
            if start.ckpt_path is not None:
                config.ckpt_path = str(start.ckpt_path)  # the file `last` named, recorded in config.yaml
            run_dir = Path(str(config.hydra.run.dir))
            sub = config.hydra.output_subdir
            if sub is not None and (run_dir / str(sub) / "config.yaml").is_file():  # keep the first run's record
                n = 1 + len(list((run_dir / str(sub)).glob("resume-*")))
                config.hydra.output_subdir = f"{sub}/resume-{n}"

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from dlf.distributed import refuse_multirun  # [ddp] DDP in a basic-launcher multirun: one line
        from dlf.run.checks import logger_packages

        try:  # [ddp]
            refuse_multirun(config)  # [ddp]
            logger_packages(config)  # a logger's package missing: one line before any job, not one per job
        except DlfError as e:  # [ddp]
            fail(str(e))  # [ddp]
        FAILED_JOBS.clear()
        self._sweep_dir, self._start = Path(str(config.hydra.sweep.dir)), time.time()
        sub = config.hydra.output_subdir
        if str(config.get("ckpt_path")) == "last" and sub is not None:
            # a sweep continued (dlf.run.sweep.continue_job): a job dir that has Hydra's records keeps them and gets
            # <sub>/resume-<n>/ beside them, as a single run does. Every job's config is composed again from these
            # overrides, so the records dir is worked out per job, in its own dir (resolver dlf_records).
            with read_write(config), open_dict(config):
                config.hydra.overrides.hydra.append(
                    f"hydra.output_subdir='${{dlf_records:${{hydra.runtime.output_dir}},{sub}}}'")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """Collect the jobs that failed from their result.json files (jobs may have run in other processes)."""
        JOBS_RUN[0] = 0
        for f in sorted(self._sweep_dir.glob("**/result.json")):
            try:
                res = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if f.stat().st_mtime < self._start - 1:  # an earlier sweep's job in the same dir
                continue
            JOBS_RUN[0] += 1
            if res.get("status") in ("failed", "diverged", "interrupted"):  # interrupted: a job Slurm cancelled
                job = f.parent.name.split("_", 1)[0]  # job dirs are <n>_<overrides>: the number, the overrides follow
                FAILED_JOBS.append(f"{job} ({' '.join(res.get('overrides') or [])}): {res.get('error')}")


def task(cfg: DictConfig) -> float:
    """Hydra's task function: run, write `<job dir>/result.json`, return the monitored metric.

    Returns `monitor`'s best value as kept by the checkpoint callback watching it (checkpoints/best.ckpt), else its
    last logged value (e.g. with debug=fast, which keeps no checkpoint), so any Hydra sweeper can optimize it; NaN for
    a job that failed, and for a search's trial that never logged it (then recorded as failed): dlf's Optuna sweeper
    (hydra_plugins.dlf_optuna_sweeper) tells Optuna such a trial failed. A single run's error is one line and a
    non-zero exit; in a multirun (-m) the job prints its line, the sweep goes on, and `cli()` exits non-zero at the end.
    Ctrl+C / SIGTERM stop a sweep too (after the job records itself)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    if multirun and (done := continue_job(cfg, Path(hc.runtime.output_dir), hc.job.num)) is not None:
        value = done["best"] if done.get("best") is not None else done.get("last")  # finished before: not run again
        return float("nan") if value is None else float(value)
    outcome, start = Outcome(), time.monotonic()
    status, error, code = "ok", None, 0
    try:
        run(cfg, outcome, checked=not multirun)  # a single run was checked by Startup before its dir was made
    except (KeyboardInterrupt, SystemExit, Exception) as e:
        status, error, code = classify(e, cfg)
        if status == "raise":
            raise
        if full_error() and not multirun and status != "interrupted":  # HYDRA_FULL_ERROR=1: Python's traceback
            write_result(hc.runtime.output_dir, cfg, status, error, outcome, time.monotonic() - start, hc.overrides.task)
            raise
    if status == "ok" and outcome.value is None and multirun and "BasicSweeper" not in str(hc.sweeper.get("_target_")):
        status, code, error = "failed", 1, no_value(cfg, outcome)  # a search needs every trial's value
    write_result(hc.runtime.output_dir, cfg, status, error, outcome, time.monotonic() - start, hc.overrides.task)
    if status == "ok":
        return float("nan") if outcome.value is None else float(outcome.value)
    if multirun and status == "interrupted" and "ckpt_path=last" in str(error):
        error += f" hydra.sweep.dir={hc.sweep.dir} (the sweep's finished jobs are not run again)"
    if multirun and status != "interrupted":
        print(f"dlf: job {hc.job.num} {status} ({' '.join(hc.overrides.task) or 'no overrides'}): {error}",
              file=sys.stderr)  # the sweep goes on; cli() ends it with one error line
        return float("nan")
    fail(error, code)


def no_value(cfg: DictConfig, outcome: Outcome) -> str:
    """Why a search's trial that trained has no value for the sweeper."""
    return (f"{cfg.get('monitor')} was never logged ({outcome.steps} steps, no validation), so the sweeper has no "
            "value for this trial: give each job more steps (trainer.max_steps) or validate sooner "
            "(trainer.val_check_interval)")


def classify(error: BaseException, cfg: DictConfig | None = None) -> tuple[str, str | None, int]:
    """What an error that stopped a run means: (status for result.json, its one line, the exit code). Status
    "interrupted" (Ctrl+C, SIGTERM, dlf's RunGuard), "diverged", "failed"; "raise" for a SystemExit that is not
    Lightning's SIGTERM exit (it goes on up)."""
    from dlf.callbacks.resilience import RunInterrupted
    from dlf.distributed import one_line_timeout  # [ddp] a rank that never joined: one line
    from dlf.errors import Diverged
    from dlf.faults import explain_write_error  # disk full / quota / ulimit -f: one line naming the file

    if isinstance(error, KeyboardInterrupt):
        return "interrupted", "interrupted", 130
    if isinstance(error, RunInterrupted):
        return "interrupted", str(error), error.code
    if isinstance(error, SystemExit):  # Lightning's SIGTERMException (a SystemExit with no code) must not exit 0
        if type(error).__name__ != "SIGTERMException":
            return "raise", None, 1
        return "interrupted", ("stopped by SIGTERM at the end of a batch without a checkpoint: resume with "
                               "ckpt_path=last (the newest last.ckpt)"), 143
    out_dir = cfg.paths.get("output_dir") if cfg is not None else None
    cause = explain_write_error(error, out_dir) or root_cause(error)
    status = "diverged" if isinstance(cause, Diverged) else "failed"
    if isinstance(cause, DlfError):
        return status, str(cause), 2
    if (line := unimportable_target(error)) is not None:
        return status, line, 2
    if cfg is not None and (line := one_line_timeout(cause, cfg)) is not None:  # [ddp]
        return status, line, 2  # [ddp]
    return status, f"{type(cause).__name__}: {one_line(cause)} (set HYDRA_FULL_ERROR=1 for the full traceback)", 1


def explain(e: BaseException) -> tuple[str, int]:
    """One line (and exit code) for an error that reached the command line: dlf's own, or Hydra's composition errors."""
    from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    cause = root_cause(e)
    if isinstance(cause, DlfError):
        return str(cause), 2
    if isinstance(e, MissingConfigException) and e.missing_cfg_file in PLUGINS:  # not a typo: a plugin not installed
        return missing_plugin(e.missing_cfg_file), 2
    if isinstance(e, MissingConfigException) and e.options and e.missing_cfg_file and "/" in e.missing_cfg_file:
        group, _, value = e.missing_cfg_file.rpartition("/")
        known = sorted(e.options)
        return f"unknown {group} '{value}': choose one of {', '.join(known)} (e.g. {group}={known[0]})", 2
    if isinstance(e, OverrideParseException):
        return (f"cannot read the command line: {one_line(e)}: write overrides as key=value (quote values with spaces "
                "or brackets)"), 2
    if (line := unimportable_target(e)) is not None:
        return line, 2
    typed = _type_error(e)
    if typed is not None:
        return typed, 2
    m = re.search(r"Could not (?:override|delete from config\.) '([^']+)'", str(e))
    if isinstance(e, ConfigCompositionException) and m:
        return _unknown_key(m.group(1), _near_keys(e)), 2
    m = re.search(r"An item is already at '([^']+)'\.\s*Either remove \+ prefix: '([^']*)'", str(e))
    if isinstance(e, ConfigCompositionException) and m:  # +key=value on a key the config has
        key, override = m.groups()
        return (f"option '{key}' already exists, so it cannot be added with '+': drop the '+' and write {override} "
                f"(++{override} sets it whether it exists or not)"), 2
    if isinstance(e, (HydraException, OmegaConfBaseException)):
        return f"bad configuration: {one_line(e)}: check the spelling of the option and its value", 2
    return f"{type(cause).__name__}: {one_line(cause)} (set HYDRA_FULL_ERROR=1 for the full traceback)", 1


def missing_plugin(config: str) -> str:
    """The line for a Hydra plugin's config (`hydra/sweeper/optuna`) that Hydra cannot find: its package is missing."""
    group, _, name = config.rpartition("/")
    package, extra = PLUGINS[config]
    return (f"{group}={name} is a Hydra plugin ({package}) that is not installed in this Python: "
            f'pip install -e ".[{extra}]" (the sweeper and launchers of docs/sweeps.md)')


def _unknown_key(key: str, near: list[str] | None = None) -> str:
    """The line for an override of a key the config does not have: where it moved, the nearest keys the config has,
    or where the keys are."""
    moved = next((new for old, new in MOVED.items() if key == old or key.startswith(old + ".")), None)
    if moved is not None:
        return f"unknown option '{key}': it moved to {moved} (README, Changelog): write the override there"
    group = key.split(".")[0]
    where = f" (the keys of {group} are in dlf/configs/{group}/)" if (CONFIG_DIR / group).is_dir() else ""
    guess = f"did you mean {near[0]}{' (or ' + ', '.join(near[1:]) + ')' if near[1:] else ''}? Else " if near else ""
    return (f"unknown option '{key}'{where}: {guess}check its spelling (`python train.py --cfg job` prints every "
            f"key), or add a new key with +{key}=...")


def _near_keys(e: BaseException) -> list[str]:
    """The keys of the config node an unknown key was looked up in that are spelled most like it (at most 3).

    Hydra's "Could not override" comes from OmegaConf's ConfigAttributeError / ConfigKeyError, which holds that node
    of the composed config (`parent_node`) and the key not found in it: no second composition, no torch."""
    import difflib

    cause = e.__cause__
    node, missing, full = (getattr(cause, a, None) for a in ("parent_node", "key", "full_key"))
    if node is None or missing is None or not full or not hasattr(node, "keys"):
        return []
    prefix = str(full)[: -len(str(missing))] if str(full).endswith(str(missing)) else ""
    names = [str(k) for k in node.keys() if not str(k).startswith("_")]
    return [prefix + k for k in difflib.get_close_matches(str(missing), names, n=3, cutoff=0.6)]


def unimportable_target(e: BaseException) -> str | None:
    """The line for a config's `_target_` whose module Python cannot import (Hydra's InstantiationException "Error
    locating target", caused by a ModuleNotFoundError): typically a user's own module run without its folder on
    PYTHONPATH (examples/user_model). None for any other error."""
    chain, seen = [], e
    while seen is not None and len(chain) < 20:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    located = next((str(x) for x in chain if type(x).__name__ == "InstantiationException"
                    and "Error locating target" in str(x)), None)
    missing = next((x for x in chain if isinstance(x, ModuleNotFoundError)), None)
    if located is None or missing is None:
        return None
    target = re.search(r"Error locating target '([^']+)'", located).group(1)
    module = missing.name or "?"
    where = (re.search(r"full_key: (\S+)", located) or [None, None])[1]
    return (f"{where + '._target_' if where else '_target_'}='{target}' cannot be imported: no module named "
            f"'{module}' on Python's path: put the folder that holds it on PYTHONPATH (from that folder: "
            f"`PYTHONPATH=. dlf-train ...`), or pip install it")


def _type_error(e: BaseException) -> str | None:
    """A value of the wrong type for a key dlf.run.schema types (Hydra's ValidationError while composing): dlf's line."""
    from omegaconf.errors import ValidationError

    cause = e.__cause__ if isinstance(e.__cause__, ValidationError) else None
    text = str(cause or e)
    key = getattr(cause, "full_key", None) or (re.search(r"full_key: (\S+)", text) or [None, None])[1]
    if cause is None and "ValidationError" not in text or not key:
        return None
    value = getattr(cause, "value", None) if cause is not None else None
    if value is None:
        found = re.search(r"Value '(.*)' of type '(\w+)'", text)
        value = found.group(1) if found else "?"
        if found and found.group(2) in ("int", "float"):
            value = float(value) if found.group(2) == "float" else int(value)
    return message(key, value)


def one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return msg[0] if msg else type(e).__name__


def root_cause(e: BaseException) -> BaseException:
    """The DlfError behind a chain of wrappers (hydra's InstantiationException), else the innermost cause."""
    seen = e
    while seen is not None:
        if isinstance(seen, DlfError):
            return seen
        seen = seen.__cause__ or seen.__context__
    while e.__cause__ is not None:
        e = e.__cause__
    return e


def full_error() -> bool:
    """The user asked for Python's traceback (HYDRA_FULL_ERROR=1)."""
    return os.environ.get("DLF_FULL_ERROR", os.environ.get("HYDRA_FULL_ERROR")) == "1"


def fail(message: str, code: int = 2):
    print(f"dlf: error: {message}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    cli()
