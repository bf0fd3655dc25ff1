"""The Hydra task: check the config and checkpoint once (`prepare`), instantiate data → model → callbacks, loggers,
Trainer, fit and test (`run`), record `<job dir>/result.json` and return the monitored metric (`_task`).

`python train.py model=lstm optimizer=rmsprop` (from a clone) and `dlf-train ...` (installed) land in `dlf.cli.cli()`,
a bare `@hydra.main` app whose task function is `_task` here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlf.errors import DlfError
from dlf.schema import register as register_schemas

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # shipped inside the package (pyproject package-data)
GROUPS = ("data", "model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "paths", "experiment", "debug")

# ${dlf_pid:} in the run-dir pattern keeps two runs started in the same second apart; cached, so the workers of a
# parallel launcher (joblib, submitit: other pids) write into the sweep dir the main process made.
OmegaConf.register_new_resolver("dlf_pid", lambda: str(os.getpid()), replace=True, use_cache=True)
register_schemas()  # schema/<name> in Hydra's ConfigStore: the typed keys the config files pull in (dlf.schema)


def options(group: str) -> list[str]:
    """The option names of a config group (files in dlf/configs/<group>/)."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _instantiate_all(section) -> list:
    from hydra.utils import instantiate

    if not section:
        return []
    return [instantiate(c) for c in section.values() if isinstance(c, DictConfig) and "_target_" in c]


def prepare(cfg: DictConfig) -> dict:
    """The start-up checks, each done once: the config's values (`dlf.checks.check_config`, no torch), then for
    `ckpt_path` the file (`last` -> the newest last.ckpt of the task), read with weights_only=True and checked against
    the model config.
    Returns {"ckpt_path", "ckpt", "run_dir"} (None where there is no checkpoint). `cfg` may hold the hydra node and
    no run dir yet (dlf.cli.Startup calls this before Hydra makes one)."""
    import copy

    from omegaconf import open_dict

    plain = copy.deepcopy(cfg)
    with open_dict(plain):
        plain.pop("hydra", None)
        plain.paths.output_dir = "<run dir>"  # not known yet; every other value must resolve
    from dlf.checks import check_config

    check_config(plain)
    if not cfg.get("ckpt_path"):
        return {"ckpt_path": None, "ckpt": None, "run_dir": None}
    from dlf.checkpoint import check_compatible, read_checkpoint, resolve_ckpt_path, run_dir_of

    path = resolve_ckpt_path(str(cfg.ckpt_path), plain.task_name, plain.paths.log_dir)
    run = run_dir_of(path)
    hint = ""
    if run is not None and (run / ".hydra" / "overrides.yaml").is_file():
        old = [o for o in OmegaConf.load(run / ".hydra" / "overrides.yaml") if not str(o).startswith("ckpt_path=")]
        hint = f" ({' '.join(map(str, old)) or 'no overrides'})"
    ckpt = read_checkpoint(path)
    check_compatible(ckpt, OmegaConf.to_container(plain.model, resolve=False), path, hint)
    return {"ckpt_path": path, "ckpt": ckpt, "run_dir": run}


def run(cfg: DictConfig, outcome: dict | None = None, prepared: dict | None = None) -> dict:
    """Train (and test) as `cfg` says; returns the final metrics. Raises DlfError for bad input.

    `prepared`: what `prepare(cfg)` returned, if it already ran (else it runs here). `outcome` (if given) receives
    `best` (the checkpoint callback's best `monitor` value, if it kept one), `last` (the final `monitor` value) and
    `steps` (optimizer steps taken), also when training fails half-way."""
    import lightning as L
    import torch
    from hydra.utils import instantiate

    from dlf import distributed, speed  # [ddp]
    from dlf import lightning_internals as internals
    from dlf.callbacks.resilience import RunGuard
    from dlf.checkpoint import AtomicCheckpointIO
    from dlf.console import say  # the run's report: console and train.log

    if prepared is None:
        prepared = prepare(cfg)
    distributed.publish_run_dir(cfg)  # [ddp] rank 0 under torchrun tells the other ranks its run dir
    ckpt_path, ckpt = prepared.get("ckpt_path"), prepared.get("ckpt")
    prepared.clear()  # the checkpoint's tensors are dropped once the weights are checked below
    torch.set_float32_matmul_precision("high")
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.data)
    facts = datamodule.prepare()
    optimizer = instantiate(cfg.optimizer) if cfg.get("optimizer") else None
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    # partial first, then call: hydra would turn the facts dataclass into a DictConfig if passed through instantiate
    model = instantiate(speed.model_config(cfg.model), _partial_=True)(facts=facts, optimizer=optimizer,
                                                                     scheduler=scheduler)
    speed.apply(model, cfg)  # model.compile=true; precision/compile a family cannot take: one line
    _check_monitor(model, cfg.get("monitor"))
    recorded = None  # `monitor`'s last value as the checkpoint recorded it (a run resumed at its end validates nothing)
    if ckpt is not None:
        _check_weights_fit(model, ckpt["state_dict"], ckpt_path)
        recorded = _recorded_score(ckpt, cfg.get("monitor"))
        del ckpt

    guard = RunGuard(meta={"model": OmegaConf.to_container(cfg.model, resolve=False), "task_name": cfg.task_name,
                           "data": facts.name, "run_dir": str(cfg.paths.output_dir)})
    callbacks = [guard, *_instantiate_all(cfg.get("callbacks"))]
    if distributed.is_ddp(cfg.trainer):  # [ddp] each rank its own noise (z, shifts, dropout) at each step
        from dlf.callbacks.rank_noise import RankNoise

        callbacks.insert(1, RankNoise(cfg.seed))
    if not cfg.trainer.get("enable_progress_bar", True):  # Lightning refuses a progress bar callback when it is off
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.ProgressBar)]
    loggers = _instantiate_all(cfg.get("logger"))
    plugins = list(cfg.trainer.get("plugins") or []) + [AtomicCheckpointIO()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers if loggers else False, plugins=plugins,
                          strategy=distributed.strategy(cfg, model),  # [ddp] DDPStrategy with a join timeout
                          profiler=speed.profiler(cfg))  # no per-hook context unless asked to profile
    internals.skip_empty_batch_hooks(model, trainer.callbacks)  # Lightning's per-batch calls of empty hooks
    internals.choose_data_hooks_once(trainer)  # which object's batch-transfer hooks: asked once a stage, not a batch
    internals.skip_same_device_moves()  # self.log's no-op move of the logged value, ~0.3-0.6 ms a call on CPU
    outcome = {} if outcome is None else outcome

    # no failed NVML load at every optimizer step where there is no NVIDIA driver (the same answer, ~50 µs sooner)
    with internals.cuda_check_without_failing_nvml():
        if cfg.get("train", True):
            try:
                trainer.fit(model, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None,
                            weights_only=True)
            finally:
                outcome["steps"] = int(trainer.global_step)
                outcome["best"] = _best_score(trainer, cfg.get("monitor"))
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if cfg.get("test", True):
            best = getattr(trainer.checkpoint_callback, "best_model_path", "")  # none with callbacks.model_checkpoint=null
            if cfg.get("train", True) and best:
                test_metrics = trainer.test(model, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=False)
            elif ckpt_path:  # train=false ckpt_path=...: evaluate that checkpoint
                test_metrics = trainer.test(model, datamodule=datamodule, ckpt_path=str(ckpt_path), weights_only=True,
                                            verbose=False)
            else:
                test_metrics = trainer.test(model, datamodule=datamodule, verbose=False)
            for d in test_metrics:
                metrics.update({k: float(v) for k, v in d.items()})
    outcome["last"] = metrics.get(cfg.get("monitor"), recorded)
    tests = {k: round(v, 4) for k, v in metrics.items() if k.startswith("test/")}
    outcome["test"] = {k: v for k, v in metrics.items() if k.startswith("test/")}  # into result.json (reproduce.py)
    if tests:
        say("Test: " + ", ".join(f"{k}={v}" for k, v in sorted(tests.items())))
    say(f"Run dir: {cfg.paths.output_dir}   (tensorboard --logdir {cfg.paths.output_dir})")
    return metrics


def _check_monitor(model, monitor: str | None) -> None:
    """`monitor=` must name a metric the model logs: checked when the model is built, before any training."""
    names = model.metric_names() if hasattr(model, "metric_names") else None
    if monitor and names is not None and monitor not in names:
        val = sorted(n for n in names if n.startswith("val/")) or sorted(names)
        raise DlfError(f"monitor={monitor} is not a metric this run logs (it logs {', '.join(sorted(names))}): set "
                       f"monitor= to one of those, e.g. monitor={val[0]}")


def _best_score(trainer, monitor) -> float | None:
    """The best `monitor` value a ModelCheckpoint watching it kept (None: no such callback, or nothing logged)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.monitor == monitor and cb.best_model_score is not None:
            return float(cb.best_model_score)
    return None


def _recorded_score(ckpt: dict, monitor) -> float | None:
    """The last `monitor` value a ModelCheckpoint watching it recorded in `ckpt` (its `current_score`; Lightning does
    not restore it). A run resumed from a checkpoint written at its last step trains and validates nothing, so this is
    its final value."""
    for state in (ckpt.get("callbacks") or {}).values():
        if isinstance(state, dict) and state.get("monitor") == monitor and state.get("current_score") is not None:
            return float(state["current_score"])
    return None


def _check_weights_fit(model, state_dict: dict, path) -> None:
    """A checkpoint whose tensors do not fit this model (other layer sizes) fails in one line."""
    own = model.state_dict()
    for k, v in state_dict.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            raise DlfError(f"ckpt_path={path} does not fit this model: {k} has shape {tuple(v.shape)} in the "
                           f"checkpoint but {tuple(own[k].shape)} here: resume with the model options it was trained with")
    missing = [k for k in own if k not in state_dict and not k.endswith(("_tracked", "num_batches_tracked"))]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        raise DlfError(f"ckpt_path={path} does not fit this model (missing {missing[:2]}, unexpected {unexpected[:2]}):"
                       " pass a checkpoint of the same model")


def _one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return msg[0] if msg else type(e).__name__


def _root_cause(e: BaseException) -> BaseException:
    """The DlfError behind a chain of wrappers (hydra's InstantiationException), else the innermost cause."""
    seen = e
    while seen is not None:
        if isinstance(seen, DlfError):
            return seen
        seen = seen.__cause__ or seen.__context__
    while e.__cause__ is not None:
        e = e.__cause__
    return e


def _fail(message: str, code: int = 2):
    print(f"dlf: error: {message}", file=sys.stderr)
    sys.exit(code)


PREPARED: dict = {}  # a single run's start-up checks, done by dlf.cli.Startup before Hydra made the run dir


def _write_json(path: Path, data: dict) -> None:
    """Write `data` as JSON to `path` atomically (a temp file in the same folder, then os.replace)."""
    import json
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _task(cfg: DictConfig) -> float:
    """Hydra's task function: run, write `<job dir>/result.json`, return the monitored metric.

    Returns `monitor`'s best value as kept by the checkpoint callback watching it (checkpoints/best.ckpt), else its
    last logged value (e.g. with debug=fast, which keeps no checkpoint), so any Hydra sweeper can optimize it.
    A failed or diverged job returns NaN, and so does a job of a search (any sweeper but the basic one) that never
    logged `monitor`, which is then recorded as failed: dlf's Optuna sweeper (hydra_plugins.dlf_optuna_sweeper) tells
    Optuna such a trial failed, which leaves it out of its model (a "worst value" would feed it a made-up score); the
    basic sweeper ignores return values.
    In a single run an error is one line and a non-zero exit; in a multirun (-m) the job prints its line and the sweep
    goes on, and `cli()` exits non-zero at the end. Ctrl+C / SIGTERM stop a sweep too (after the job records itself).
    result.json: {status: ok|failed|diverged|interrupted, error, monitor, mode, best, last, steps, test (the test/*
    metrics), wall_s, overrides}.
    """
    import time

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from dlf.callbacks.resilience import RunInterrupted
    from dlf.errors import Diverged

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    if multirun:  # ckpt_path=last in a sweep: this job's own last.ckpt; a finished job is not run again
        from dlf.sweep import continue_job

        done = continue_job(cfg, Path(hc.runtime.output_dir), hc.job.num)
        if done is not None:
            value = done["best"] if done.get("best") is not None else done.get("last")
            return float("nan") if value is None else float(value)
    outcome: dict = {"best": None, "last": None, "steps": 0}
    status, error, code, start = "ok", None, 0, time.monotonic()
    try:
        prepared = dict(PREPARED) if not multirun and PREPARED else None  # checked before the run dir was made
        PREPARED.clear()
        run(cfg, outcome, prepared)
    except KeyboardInterrupt:
        status, error, code = "interrupted", "interrupted", 130
    except RunInterrupted as e:
        status, error, code = "interrupted", str(e), e.code
    except SystemExit as e:  # Lightning's SIGTERMException (a SystemExit with no code) must not exit 0
        if type(e).__name__ != "SIGTERMException":
            raise
        status, code = "interrupted", 143
        error = ("stopped by SIGTERM at the end of a batch without a checkpoint: resume with ckpt_path=last "
                 "(the newest last.ckpt)")
    except Exception as e:  # noqa: BLE001 - one line, not a traceback
        from dlf.faults import explain_write_error  # disk full / quota / ulimit -f: one line naming the file

        cause = explain_write_error(e, cfg.paths.get("output_dir")) or _root_cause(e)
        status = "diverged" if isinstance(cause, Diverged) else "failed"
        from dlf.distributed import one_line_timeout  # [ddp] a rank that never joined: one line

        if isinstance(cause, DlfError):
            error, code = str(cause), 2
        elif (line := one_line_timeout(cause, cfg)) is not None:  # [ddp]
            error, code = line, 2  # [ddp]
        else:
            error, code = f"{type(cause).__name__}: {_one_line(cause)} (set HYDRA_FULL_ERROR=1 for the full traceback)", 1
        if os.environ.get("DLF_FULL_ERROR", os.environ.get("HYDRA_FULL_ERROR")) == "1" and not multirun:
            _record(hc, cfg, status, error, outcome, start)
            raise
    value = outcome["best"] if outcome["best"] is not None else outcome["last"]
    if status == "ok" and value is None and multirun and "BasicSweeper" not in str(hc.sweeper.get("_target_")):
        # a search (Optuna) needs the monitored value of every trial: a run that never logged it failed as a trial
        status, code = "failed", 1
        error = (f"{cfg.get('monitor')} was never logged ({outcome['steps']} steps, no validation), so the sweeper has "
                 "no value for this trial: give each job more steps (trainer.max_steps) or validate sooner "
                 "(trainer.val_check_interval)")
    _record(hc, cfg, status, error, outcome, start)
    if status == "ok":
        return float("nan") if value is None else float(value)
    if multirun and status == "interrupted" and "ckpt_path=last" in str(error):
        error += f" hydra.sweep.dir={hc.sweep.dir} (the sweep's finished jobs are not run again)"
    if multirun and status != "interrupted":
        print(f"dlf: job {hc.job.num} {status} ({' '.join(hc.overrides.task) or 'no overrides'}): {error}",
              file=sys.stderr)  # the sweep goes on; dlf.cli ends it with one error line
        return float("nan")
    _fail(error, code)


def _record(hc, cfg: DictConfig, status: str, error: str | None, outcome: dict, start: float) -> None:
    import math
    import time

    def num(v):  # strict JSON has no NaN/inf: a non-finite value is recorded as null (the status says why)
        return float(v) if v is not None and math.isfinite(v) else None

    _write_json(Path(hc.runtime.output_dir) / "result.json", {
        "status": status, "error": error, "monitor": cfg.get("monitor"), "mode": cfg.get("monitor_mode"),
        "best": num(outcome.get("best")), "last": num(outcome.get("last")), "steps": int(outcome.get("steps") or 0),
        "test": {k: num(v) for k, v in (outcome.get("test") or {}).items()},
        "wall_s": round(time.monotonic() - start, 3), "overrides": [str(o) for o in hc.overrides.task]})


def cli() -> None:
    """Console entry point (`dlf-train`, `python train.py`): see dlf.cli."""
    from dlf.cli import cli as main

    main()


if __name__ == "__main__":
    cli()
