"""The run: `run(cfg)` trains and tests what a composed config says, in five stages that read straight down, one
function each: build (data, system), trainer, fit, test, report. `write_result` records `<job dir>/result.json`.

`prepare` is the start-up check of a config and its checkpoint. The command line (dlf.run.cli) calls it before Hydra
makes a single run's dir and writes what it resolved into the config (`ckpt_path`: the file `last` named; the run dir
it resumes in); its task then calls `run(cfg, checked=True)`. A sweep's jobs, notebooks and tests call `run(cfg)`,
which checks first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlf.errors import DlfError
from dlf.run.schema import register as register_schemas

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"  # dlf/configs, shipped in the package (package-data)
GROUPS = ("data", "model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "paths", "experiment", "debug")

# ${dlf_pid:} in the run-dir pattern keeps two runs started in the same second apart; cached, so the workers of a
# parallel launcher (joblib, submitit: other pids) write into the sweep dir the main process made.
OmegaConf.register_new_resolver("dlf_pid", lambda: str(os.getpid()), replace=True, use_cache=True)
register_schemas()  # schema/<name> in Hydra's ConfigStore: the typed keys the config files pull in (dlf.run.schema)


def options(group: str) -> list[str]:
    """The option names of a config group (files in dlf/configs/<group>/)."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@dataclass
class Start:
    """What the start-up check resolved: the checkpoint to start from (`last` -> a file) and the run dir it is in."""

    ckpt_path: Path | None = None
    run_dir: Path | None = None


@dataclass
class Outcome:
    """What a run reached, filled in as it goes (also when it fails half-way): `best` (the checkpoint callback's best
    `monitor` value, if it kept one), `last` (the final `monitor` value), `steps` (optimizer steps: trainer.global_step,
    d_steps + 1 per d_steps batches for the GAN), `batches` (training batches run), `test` metrics."""

    best: float | None = None
    last: float | None = None
    steps: int = 0
    batches: int = 0
    test: dict = field(default_factory=dict)

    @property
    def value(self) -> float | None:
        """What the task returns to a sweeper: the best value, else the last."""
        return self.best if self.best is not None else self.last


def prepare(cfg: DictConfig) -> Start:
    """The start-up checks, each done once: the config's values (`dlf.run.checks.check_config`, no torch), then for
    `ckpt_path` the file (`last` -> the newest last.ckpt of the task), its bytes and its model config against this
    one. `cfg` may hold the hydra node and no run dir yet (dlf.run.cli.Startup calls this before Hydra makes one)."""
    from omegaconf import open_dict

    from dlf.run.checks import check_config

    plain = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # a copy without Hydra's own node
    OmegaConf.set_struct(plain, True)
    with open_dict(plain):
        plain.paths.output_dir = "<run dir>"  # not known yet; every other value must resolve
    check_config(plain)
    if not cfg.get("ckpt_path"):
        return Start()
    from dlf.run.checkpoint import check_compatible, read_checkpoint, resolve_ckpt_path, run_dir_of

    path = resolve_ckpt_path(str(cfg.ckpt_path), plain.task_name, plain.paths.log_dir)
    run = run_dir_of(path)
    check_compatible(read_checkpoint(path, mmap=True), OmegaConf.to_container(plain.model, resolve=False), path,
                     _overrides_hint(run))
    return Start(path, run)


def _overrides_hint(run: Path | None) -> str:
    """` (the overrides the checkpoint's run was started with)`, for the line that refuses a mismatched checkpoint."""
    if run is None or not (run / ".hydra" / "overrides.yaml").is_file():
        return ""
    old = [o for o in OmegaConf.load(run / ".hydra" / "overrides.yaml") if not str(o).startswith("ckpt_path=")]
    return f" ({' '.join(map(str, old)) or 'no overrides'})"


def run(cfg: DictConfig, outcome: Outcome | None = None, checked: bool = False) -> dict:
    """Train (and test) as `cfg` says; returns the final metrics. Raises DlfError for bad input.

    `checked`: `prepare` already ran and `cfg.ckpt_path` is the file it resolved (the command line's single run).
    `outcome` (if given) is filled in as the run goes, also when training fails half-way."""
    from dlf import lightning_internals as internals
    from dlf.tracking import tracked

    start = Start(Path(cfg.ckpt_path) if cfg.get("ckpt_path") else None) if checked else prepare(cfg)
    outcome = Outcome() if outcome is None else outcome
    datamodule, system, recorded = build(cfg, start)
    trainer = make_trainer(cfg, system)
    # no failed NVML load at every optimizer step where there is no NVIDIA driver (the same answer, ~50 µs sooner);
    # MLflow / W&B get the config as params first and the W&B run is finished at the end (dlf.tracking)
    try:
        with internals.cuda_check_without_failing_nvml(), tracked(trainer, cfg):
            fit(cfg, trainer, system, datamodule, start, outcome)
            metrics = test(cfg, trainer, system, datamodule, start)
    finally:
        from dlf.loggers import close_loggers

        close_loggers(trainer)  # the run's one event file, written on through fit and test
    report(cfg, metrics, outcome, recorded)
    return metrics


def build(cfg: DictConfig, start: Start):
    """Seed; the data module and its facts; the system with its optimizer and scheduler (dlf.run.build), its speed
    options, and the checks that need it built: `monitor` is a metric it logs, the checkpoint's weights fit it.
    Returns (datamodule, system, `monitor`'s value as the checkpoint recorded it)."""
    import lightning as L
    import torch
    from hydra.utils import instantiate

    from dlf import distributed  # [ddp]
    from dlf.run import speed
    from dlf.run.build import build_system
    from dlf.run.checkpoint import check_weights_fit, read_checkpoint, recorded_score

    distributed.publish_run_dir(cfg)  # [ddp] rank 0 under torchrun tells the other ranks its run dir
    torch.set_float32_matmul_precision("high")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    facts = datamodule.prepare()
    optimizer = instantiate(cfg.optimizer) if cfg.get("optimizer") else None
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    system = build_system(cfg, facts, optimizer, scheduler)
    speed.apply(system, cfg)  # model.compile=true; precision/compile a family cannot take: one line
    _check_monitor(system, cfg.get("monitor"))
    recorded = None  # `monitor`'s last value as the checkpoint recorded it (a run resumed at its end validates nothing)
    if start.ckpt_path is not None:
        ckpt = read_checkpoint(start.ckpt_path, mmap=True)  # shapes and callback states; Lightning loads the tensors
        check_weights_fit(system, ckpt["state_dict"], f"ckpt_path={start.ckpt_path}")
        recorded = recorded_score(ckpt, cfg.get("monitor"))
    return datamodule, system, recorded


def make_trainer(cfg: DictConfig, system):
    """The Trainer with dlf's RunGuard (meta into every checkpoint, divergence and signals), the configured callbacks
    and loggers, atomic checkpoint writes, the strategy, and Lightning's per-batch overheads trimmed."""
    import lightning as L
    from hydra.utils import instantiate

    from dlf import distributed  # [ddp]
    from dlf import lightning_internals as internals
    from dlf.callbacks.resilience import RunGuard
    from dlf.run import speed
    from dlf.run.checkpoint import AtomicCheckpointIO

    guard = RunGuard(meta={"model": OmegaConf.to_container(cfg.model, resolve=False), "task_name": cfg.task_name,
                           "data": system.facts.name, "run_dir": str(cfg.paths.output_dir)})
    callbacks = [guard, *_instantiate_all(cfg.get("callbacks"))]
    if not cfg.get("figures", True):  # figures=false (debug=fast): no callback that draws
        from dlf.callbacks.figures import Figures

        callbacks = [c for c in callbacks if not isinstance(c, Figures)]
    if distributed.is_ddp(cfg.trainer):  # [ddp] each rank its own noise (z, shifts, dropout) at each step
        from dlf.callbacks.rank_noise import RankNoise

        callbacks.insert(1, RankNoise(cfg.seed))
    if not cfg.trainer.get("enable_progress_bar", True):  # Lightning refuses a progress bar callback when it is off
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.ProgressBar)]
    loggers = _instantiate_all(cfg.get("logger"))
    plugins = list(cfg.trainer.get("plugins") or []) + [AtomicCheckpointIO()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers if loggers else False, plugins=plugins,
                          strategy=distributed.strategy(cfg, system),  # [ddp] DDPStrategy with a join timeout
                          profiler=speed.profiler(cfg))  # no per-hook context unless asked to profile
    internals.skip_empty_batch_hooks(system, trainer.callbacks)  # Lightning's per-batch calls of empty hooks
    internals.choose_data_hooks_once(trainer)  # which object's batch-transfer hooks: asked once a stage, not a batch
    internals.skip_same_device_moves()  # self.log's no-op move of the logged value, ~0.3-0.6 ms a call on CPU
    return trainer


def fit(cfg: DictConfig, trainer, system, datamodule, start: Start, outcome: Outcome) -> None:
    """trainer.fit (from the checkpoint, if any); the steps taken and the best `monitor` value go into `outcome`,
    also when training fails half-way."""
    if not cfg.get("train", True):
        return
    import warnings

    try:
        with warnings.catch_warnings():  # Lightning's hint when `monitor` was never logged: _no_best says why instead
            warnings.filterwarnings("ignore", message=r"`ModelCheckpoint\(monitor=.*could not find the monitored key")
            trainer.fit(system, datamodule=datamodule, ckpt_path=str(start.ckpt_path) if start.ckpt_path else None,
                        weights_only=True)
    finally:
        outcome.steps = int(trainer.global_step)
        from dlf.lightning_internals import batches_trained

        outcome.batches = batches_trained(trainer)
        outcome.best = _best_score(trainer, cfg.get("monitor"))
    _no_best(trainer, cfg.get("monitor"), outcome)


def test(cfg: DictConfig, trainer, system, datamodule, start: Start) -> dict:
    """The metrics at the end of training, and the test split's, scored with the best checkpoint of this training,
    else the checkpoint given (train=false ckpt_path=...), else the weights as they are."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if not cfg.get("test", True):
        return metrics
    best = getattr(trainer.checkpoint_callback, "best_model_path", "")  # none with callbacks.model_checkpoint=null
    if cfg.get("train", True) and best:
        ckpt_path = best
    else:
        ckpt_path = str(start.ckpt_path) if start.ckpt_path else None
    for d in trainer.test(system, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True, verbose=False):
        metrics.update({k: float(v) for k, v in d.items()})
    return metrics


def report(cfg: DictConfig, metrics: dict, outcome: Outcome, recorded: float | None) -> None:
    """`monitor`'s last value and the test metrics into `outcome`; the test line and the run dir on the console (and
    in train.log)."""
    from dlf.console import say

    outcome.last = metrics.get(cfg.get("monitor"), recorded)
    outcome.test = {k: v for k, v in metrics.items() if k.startswith("test/")}  # into result.json (reproduce.py)
    tests = {k: round(v, 4) for k, v in outcome.test.items()}
    if tests:
        say("Test: " + ", ".join(f"{k}={v}" for k, v in sorted(tests.items())))
    say(f"Run dir: {_pointers(cfg, Path(str(cfg.paths.output_dir)))}")


def _pointers(cfg: DictConfig, run_dir: Path) -> str:
    """The run dir, its report.html (written as the job ends: dlf.tools.report.Reports, a Hydra callback) and the
    TensorBoard command where the run wrote event files."""
    from hydra.core.hydra_config import HydraConfig

    events = any(run_dir.glob("events.out.tfevents.*")) or any(run_dir.glob("*/events.out.tfevents.*"))
    report = cfg.get("report", True) and HydraConfig.initialized() and "report" in (HydraConfig.get().callbacks or {})
    hints = ([f"open {run_dir / 'report.html'}"] if report else []) + ([f"tensorboard --logdir {run_dir}"] if events else [])
    return f"{run_dir}" + (f"   ({'; '.join(hints)})" if hints else "")


def _instantiate_all(section) -> list:
    from hydra.utils import instantiate

    if not section:
        return []
    return [instantiate(c) for c in section.values() if isinstance(c, DictConfig) and "_target_" in c]


def _check_monitor(system, monitor: str | None) -> None:
    """`monitor=` must name a metric the system logs: checked when the system is built, before any training."""
    names = system.metric_names() if hasattr(system, "metric_names") else None
    if monitor and names is not None and monitor not in names:
        val = sorted(n for n in names if n.startswith("val/")) or sorted(names)
        raise DlfError(f"monitor={monitor} is not a metric this run logs (it logs {', '.join(sorted(names))}): set "
                       f"monitor= to one of those, e.g. monitor={val[0]}")


def _no_best(trainer, monitor: str | None, outcome: Outcome) -> None:
    """A run whose checkpoint callback watches `monitor` but that stopped before its first validation wrote no
    best.ckpt: one line says so, and what to change."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from dlf.console import say

    watching = [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor == monitor]
    if not watching or watching[0].best_model_path or monitor in trainer.callback_metrics or trainer.interrupted:
        return
    every = trainer.check_val_every_n_epoch or 1
    epochs = "each epoch" if every == 1 else f"every {every} epochs"
    limit = f" (trainer.max_steps={trainer.max_steps})" if trainer.max_steps and trainer.max_steps > 0 else ""
    say(f"No checkpoints/best.ckpt: {monitor} is measured at validation, after {epochs} of {trainer.num_training_batches}"
        f" batches, and this run stopped after {outcome.batches}{limit} before the first one; the test scored the final"
        " weights (checkpoints/last.ckpt). Train longer, or validate sooner with trainer.val_check_interval=<batches>")


def _best_score(trainer, monitor) -> float | None:
    """The best `monitor` value a ModelCheckpoint watching it kept (None: no such callback, or nothing logged)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.monitor == monitor and cb.best_model_score is not None:
            return float(cb.best_model_score)
    return None


def write_result(output_dir, cfg: DictConfig, status: str, error: str | None, outcome: Outcome, wall_s: float,
                 overrides: list) -> None:
    """<job dir>/result.json, written atomically: {status: ok|failed|diverged|interrupted, error, monitor, mode,
    best, last, steps, batches, test (the test/* metrics), wall_s, overrides}. Strict JSON has no NaN/inf: a non-finite value
    is recorded as null (the status says why). The contract between a job and its sweep (dlf.tools.compare)."""
    import json
    import math

    from dlf.faults import atomic_write_text

    def num(v):
        return float(v) if v is not None and math.isfinite(v) else None

    data = {"status": status, "error": error, "monitor": cfg.get("monitor"), "mode": cfg.get("monitor_mode"),
            "best": num(outcome.best), "last": num(outcome.last), "steps": int(outcome.steps or 0),
            "batches": int(outcome.batches or 0),
            "test": {k: num(v) for k, v in (outcome.test or {}).items()}, "wall_s": round(wall_s, 3),
            "overrides": [str(o) for o in overrides]}
    path = Path(output_dir) / "result.json"
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
