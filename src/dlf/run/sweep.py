"""Hydra sweeps you can read: job dirs named by their overrides, threads per parallel job, and a summary at the end.

* `${dlf_job_dir:${hydra.job.num},${hydra.job.override_dirname}}` (configs/hydra/default.yaml) names a multirun's job
  dirs `3_optimizer=adam,seed=1`: safe characters only, at most MAX_NAME characters (a hash keeps long names apart).
* `threads_per_job`: torch threads for one job of a parallel launcher (cores // n_jobs for joblib); the Hydra
  callback dlf.tools.summary.SweepSummary sets them before each job and writes the sweep's summary at its end.
* `use_dlf_optuna`: `hydra/sweeper=optuna` runs as hydra_plugins.dlf_optuna_sweeper.OptunaSweeper, where a failed trial is
  Optuna's FAIL and the search goes on (dlf.tools.summary.SweepSummary.on_multirun_start, before Hydra makes
  the sweeper).
* `use_dlf_launcher`: the submitit launchers run as hydra_plugins.dlf_submitit_launcher's, where a job that ends
  without a result (scancel, a time limit) is a row of the sweep, not its end.
* `continue_job`: `ckpt_path=last` in a multirun means each job's own `<job dir>/checkpoints/last.ckpt`, so
  `python train.py -m <same overrides> hydra.sweep.dir=<dir> ckpt_path=last` continues a killed sweep: finished jobs
  are not run again (their result.json is returned), an interrupted job resumes, the others start fresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

MAX_NAME = 96  # characters of a job dir name: far below the 255 bytes file systems allow, and readable in TensorBoard
_UNSAFE = re.compile(r"[^\w.,=+\-~@%\[\]]")  # '/' would make a sub-folder; quotes, spaces, ':' and '*' trouble shells


def job_dir_name(num: Any, override_dirname: str = "") -> str:
    """`3` + `optimizer=adam,seed=1` -> `3_optimizer=adam,seed=1`; unsafe characters become `_`; a name longer than
    MAX_NAME keeps its start and ends with `~` and 8 hex digits of the full name's hash."""
    name = _UNSAFE.sub("_", str(override_dirname).replace("'", "").replace('"', ""))
    name = f"{num}_{name}" if name else str(num)
    if len(name) > MAX_NAME:
        name = name[: MAX_NAME - 9] + "~" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


OmegaConf.register_new_resolver("dlf_job_dir", job_dir_name, replace=True)


def records_dir(output_dir: str, sub: str = ".hydra") -> str:
    """Where Hydra writes a job's records: `sub`, or `sub/resume-<n>` where the job dir has them already (a continued
    sweep keeps each job's first config.yaml, like a resumed single run)."""
    base = Path(str(output_dir)) / sub
    return f"{sub}/resume-{1 + len(list(base.glob('resume-*')))}" if (base / "config.yaml").is_file() else sub


OmegaConf.register_new_resolver("dlf_records", records_dir, replace=True)


def cores() -> int:
    """CPU cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_per_job(launcher: DictConfig | None, available: int) -> int | None:
    """Torch threads for one job of a parallel launcher: cores // n_jobs for joblib (n_jobs=-1: one per core), the
    job's `cpus_per_task` for submitit; None (torch's own default) for the basic launcher, which runs one job at a time."""
    target = str((launcher or {}).get("_target_", ""))
    if target.endswith("JoblibLauncher"):
        n = int(launcher.get("n_jobs") or 1)
        n = available if n < 0 else n  # joblib: -1 = as many workers as cores
        return max(1, available // max(1, min(n, available)))
    if "submitit" in target and launcher.get("cpus_per_task"):
        return int(launcher.get("cpus_per_task"))
    return None


PLUGIN_OPTUNA = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"


def use_dlf_optuna(config: DictConfig) -> None:
    """`hydra/sweeper=optuna` runs as hydra_plugins.dlf_optuna_sweeper.OptunaSweeper (Hydra makes the sweeper after
    the callbacks' on_multirun_start): the same search, in which a failed, diverged or never-validated trial is
    Optuna's FAIL and the search goes on. Unless the command line sets them:
    - max_failure_rate is 1.0 (the plugin's 0.0 ended a search at its first failed trial);
    - the direction follows `monitor_mode` (the plugin's default, minimize, minimized `model=mlp`'s val/acc).
    A config file named `optuna` cannot take the plugin's place: Hydra refuses a file that shadows a ConfigStore entry
    with a defaults list, and makes sweepers only from the `hydra_plugins` package."""
    from omegaconf import open_dict, read_write

    sweeper = config.hydra.get("sweeper")
    if sweeper is None or sweeper.get("_target_") != PLUGIN_OPTUNA:
        return
    # unresolved: a continued sweep's override of hydra.output_subdir interpolates the job's runtime dir (Startup)
    overrides = OmegaConf.to_container(config.hydra.overrides.hydra, resolve=False)
    given = {str(o).split("=", 1)[0].lstrip("+~") for o in overrides}
    with read_write(config), open_dict(config):
        sweeper._target_ = "hydra_plugins.dlf_optuna_sweeper.OptunaSweeper"
        if "hydra.sweeper.max_failure_rate" not in given:
            sweeper.max_failure_rate = 1.0
        if "hydra.sweeper.direction" not in given and not OmegaConf.is_list(sweeper.direction):
            sweeper.direction = f"{config.monitor_mode}imize"  # the plugin's default minimized val/acc (model=mlp)


PLUGIN_SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher."


def use_dlf_launcher(config: DictConfig) -> None:
    """`hydra/launcher=submitit_slurm` / `submitit_local` run as hydra_plugins.dlf_submitit_launcher's classes (as
    `hydra/launcher=slurm` does): a job that ends without a result (cancelled, timed out, killed) is a failed or
    interrupted row of the sweep instead of the exception that ended the sweep."""
    from omegaconf import open_dict, read_write

    launcher = config.hydra.get("launcher")
    target = str((launcher or {}).get("_target_", ""))
    if target.startswith(PLUGIN_SUBMITIT):
        with read_write(config), open_dict(config):
            launcher._target_ = "hydra_plugins.dlf_submitit_launcher." + target.rsplit(".", 1)[1]


def continue_job(cfg: DictConfig, job_dir: Path, num: Any = "?") -> dict | None:
    """`ckpt_path=last` in a multirun, or a job of a Slurm sweep that Slurm requeued (SLURM_RESTART_COUNT >= 1, no
    ckpt_path given: submitit runs the same job again in the same job dir): this job's own checkpoint, not the newest
    of the task (another job's).

    A job whose result.json says `ok` already finished: returns that result (the task hands its value to the sweeper,
    the summary reads the file) and the job is not run again. Otherwise `cfg.ckpt_path` becomes the job's
    `checkpoints/last.ckpt` (an interrupted job resumes exactly), or null where the job never wrote one (it starts
    fresh). Returns None then. Any other `ckpt_path` is left as it is."""
    from omegaconf import open_dict

    requeued = int(os.environ.get("SLURM_RESTART_COUNT") or 0) >= 1 and not cfg.get("ckpt_path")
    if str(cfg.get("ckpt_path")) != "last" and not requeued:  # a Slurm job of the sweep requeued: its own last.ckpt
        return None
    result = job_dir / "result.json"
    try:
        done = json.loads(result.read_text())
    except (OSError, ValueError):
        done = None
    if isinstance(done, dict) and done.get("status") == "ok":
        os.utime(result)  # a job of this sweep: dlf.run.cli counts the result.json files newer than the sweep's start
        print(f"dlf: job {num} finished before ({result} says ok): not run again")
        return done
    own = OmegaConf.select(cfg, "callbacks.step_checkpoint.dirpath", default=None)
    own = Path(str(own or job_dir / "checkpoints")) / "last.ckpt"
    with open_dict(cfg):
        cfg.ckpt_path = str(own) if own.is_file() else None
    print(f"dlf: job {num} " + (f"resumes from {own}" if own.is_file() else f"starts fresh (no {own} yet)"))
    return None
