"""The command line: `dlf-train` / `python train.py` is a plain `@hydra.main` app over dlf's configs, so every Hydra
flag and the whole override grammar work as Hydra documents them. dlf adds three things around it:

- `cli()` turns any error into one line `dlf: error: ...` (Hydra's composition errors included) and a non-zero exit;
  a multirun in which any job failed exits 1 after all jobs ran.
- `Startup`, a Hydra callback (configs/hydra/default.yaml): before a single run's dir is made it checks the config
  (`dlf.train.prepare`: values, then the checkpoint, read once) and, for `ckpt_path=...` with training, points
  `hydra.run.dir` at the checkpoint's own run dir and `hydra.output_subdir` at `.hydra/resume-<n>`, so the run's first
  `.hydra/config.yaml` is kept and every resume's overrides and config lie beside it, numbered.
- At the end of a multirun it reads the jobs' result.json files (whatever launcher ran them) to set the exit status.

Nothing here imports torch: `--help`, `--cfg`, `--info` and config errors answer in about a second.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

import dlf.sweep  # noqa: F401 - registers the resolvers of the sweep config (dlf_job_dir, dlf_records)
from dlf.checks import MOVED, message
from dlf.errors import DlfError
from dlf.train import CONFIG_DIR, _fail, _one_line, _root_cause, _task

FAILED_JOBS: list[str] = []  # "job <n> (<overrides>): <error>" for each failed job of this process's multirun
JOBS_RUN: list[int] = [0]  # how many jobs of it wrote a result.json


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
            _fail(*explain(e))

    def _start_run(self, config: DictConfig) -> None:
        from dlf.train import PREPARED, prepare

        PREPARED.clear()
        prepared = prepare(config)
        given = {str(o).split("=", 1)[0].lstrip("+~") for o in config.hydra.overrides.hydra}
        run = prepared.get("run_dir")
        if run is not None and config.get("train", True) and "hydra.run.dir" not in given:
            with read_write(config), open_dict(config):
                config.hydra.run.dir = str(run)  # continue where the interrupted run left its files
        from dlf.distributed import share_run_dir  # [ddp] one run dir for every rank under torchrun/srun

        share_run_dir(config, "hydra.run.dir" in given or (run is not None and config.get("train", True)))  # [ddp]
        with read_write(config), open_dict(config):
            if prepared.get("ckpt_path") is not None:
                config.ckpt_path = str(prepared["ckpt_path"])  # the file `last` named, recorded in config.yaml
            run_dir = Path(str(config.hydra.run.dir))
            sub = config.hydra.output_subdir
            if sub is not None and (run_dir / str(sub) / "config.yaml").is_file():  # keep the first run's record
                n = 1 + len(list((run_dir / str(sub)).glob("resume-*")))
                config.hydra.output_subdir = f"{sub}/resume-{n}"
        PREPARED.update(prepared)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from dlf.distributed import refuse_multirun  # [ddp] DDP in a basic-launcher multirun: one line

        try:  # [ddp]
            refuse_multirun(config)  # [ddp]
        except DlfError as e:  # [ddp]
            _fail(str(e))  # [ddp]
        FAILED_JOBS.clear()
        self._sweep_dir, self._start = Path(str(config.hydra.sweep.dir)), time.time()
        sub = config.hydra.output_subdir
        if str(config.get("ckpt_path")) == "last" and sub is not None:
            # a sweep continued (dlf.sweep.continue_job): a job dir that has Hydra's records keeps them and gets
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
            if res.get("status") in ("failed", "diverged"):
                job = f.parent.name.split("_", 1)[0]  # job dirs are <n>_<overrides>: the number, the overrides follow
                FAILED_JOBS.append(f"{job} ({' '.join(res.get('overrides') or [])}): {res.get('error')}")


def explain(e: BaseException) -> tuple[str, int]:
    """One line (and exit code) for an error that reached the command line: dlf's own, or Hydra's composition errors."""
    from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    cause = _root_cause(e)
    if isinstance(cause, DlfError):
        return str(cause), 2
    if isinstance(e, MissingConfigException) and e.options and e.missing_cfg_file and "/" in e.missing_cfg_file:
        group, _, value = e.missing_cfg_file.rpartition("/")
        known = sorted(e.options)
        return f"unknown {group} '{value}': choose one of {', '.join(known)} (e.g. {group}={known[0]})", 2
    if isinstance(e, OverrideParseException):
        return (f"cannot read the command line: {_one_line(e)}: write overrides as key=value (quote values with spaces "
                "or brackets)"), 2
    typed = _type_error(e)
    if typed is not None:
        return typed, 2
    m = re.search(r"Could not (?:override|delete from config\.) '([^']+)'", str(e))
    if isinstance(e, ConfigCompositionException) and m:
        key = m.group(1)
        moved = next((new for old, new in MOVED.items() if key == old or key.startswith(old + ".")), None)
        if moved is not None:
            return f"unknown option '{key}': it moved to {moved} (README, Changelog): write the override there", 2
        group = key.split(".")[0]
        where = f" (the keys of {group} are in dlf/configs/{group}/)" if (CONFIG_DIR / group).is_dir() else ""
        return (f"unknown option '{key}'{where}: check its spelling (`python train.py --cfg job` prints every key), "
                f"or add a new key with +{key}=..."), 2
    if isinstance(e, (HydraException, OmegaConfBaseException)):
        return f"bad configuration: {_one_line(e)}: check the spelling of the option and its value", 2
    return f"{type(cause).__name__}: {_one_line(cause)} (set HYDRA_FULL_ERROR=1 for the full traceback)", 1


def _type_error(e: BaseException) -> str | None:
    """A value of the wrong type for a key dlf.schema types (Hydra's ValidationError while composing): dlf's line."""
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


def cli() -> None:
    """Console entry point (`dlf-train`, `python train.py`): a bare `@hydra.main` app with one-line errors."""
    import hydra

    if not CONFIG_DIR.is_dir():
        _fail(f"config dir {CONFIG_DIR} not found: reinstall dlf (`pip install -e .` from a clone, or `pip install dlf`)")
    full = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["DLF_FULL_ERROR"] = "1" if full == "1" else "0"  # what the user asked for (the task reads it)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing; dlf prints the one line below
    FAILED_JOBS.clear()
    from hydra.core.utils import setup_globals

    setup_globals()  # ${hydra:...} and ${now:...}: Hydra registers them itself, except on --experimental-rerun
    try:
        hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")(_task)()
    except Exception as e:  # noqa: BLE001 - one line, not a traceback
        if full == "1":
            raise
        _fail(*explain(e))
    finally:
        os.environ.pop("DLF_FULL_ERROR", None)
        if full is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full
    if FAILED_JOBS:  # a multirun whose jobs all ran, some of them failed
        _fail(f"{len(FAILED_JOBS)} of {JOBS_RUN[0]} jobs of the sweep failed, e.g. job {FAILED_JOBS[0]}: fix it and "
              "rerun those jobs (each job dir has a result.json; the others' results are kept)", 1)


if __name__ == "__main__":
    cli()
