"""Optuna pruning inside a search's trial (the hparams_search configs' `callbacks.optuna_pruning`, off by default).

At each validation the trial's `monitor` value is reported to its study (the sweeper's storage, which every job can
open: SQLite or PostgreSQL, not an in-memory study) as the trial's intermediate value at the global step; Optuna's
pruner (`pruner=median`: optuna.pruners.MedianPruner) then compares it with the earlier trials at that step, and a
trial it prunes stops training there (trainer.should_stop) and is marked so that dlf's sweeper tells it PRUNED
(hydra_plugins.dlf_optuna_sweeper.shared). The trial is the job's number, which dlf's sweeper sets to the trial's.
Optuna's own PyTorchLightningPruningCallback (optuna 2.10) imports the old `pytorch_lightning` package, hence this.
Rank 0 reports and decides; under DDP the other ranks follow through Lightning's should_stop.
"""

from __future__ import annotations

import lightning as L

from dlf.console import say

PRUNERS = ("median",)
PRUNED_ATTR = "dlf_pruned_at_step"  # read by hydra_plugins.dlf_optuna_sweeper.shared


class OptunaPruning(L.Callback):
    def __init__(self, pruner: str | None = None, storage: str | None = None, study_name: str | None = None,
                 trial: int | str | None = None, monitor: str = "val/loss",
                 n_startup_trials: int = 3, n_warmup_steps: int = 0) -> None:
        if pruner is not None and pruner not in PRUNERS:
            from dlf.errors import DlfError

            raise DlfError(f"callbacks.optuna_pruning.pruner={pruner} is not a pruner dlf knows: choose median or null")
        self.pruner, self.storage, self.study_name = pruner, storage, study_name
        self.trial_number = None if trial is None else int(trial)
        self.monitor = monitor  # the study's direction (the sweeper's) says which way is better
        self.n_startup_trials, self.n_warmup_steps = n_startup_trials, n_warmup_steps
        self._trial = None

    def _open(self):
        """The job's trial in its study (opened once)."""
        import optuna

        if self._trial is None:
            pruner = optuna.pruners.MedianPruner(n_startup_trials=self.n_startup_trials, n_warmup_steps=self.n_warmup_steps)
            study = optuna.load_study(study_name=self.study_name, storage=self.storage, pruner=pruner)
            frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == self.trial_number)
            self._trial = optuna.trial.Trial(study, frozen._trial_id)
        return self._trial

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pruner is None or trainer.sanity_checking or not self.storage or self.trial_number is None:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or not trainer.is_global_zero:
            return
        trial, step = self._open(), trainer.global_step
        trial.report(float(value), step)
        if trial.should_prune():
            trial.set_system_attr(PRUNED_ATTR, step)
            trainer.should_stop = True
            say(f"Optuna's {self.pruner} pruner stopped trial {self.trial_number} at step {step}: "
                f"{self.monitor}={float(value):.4g} is worse than the median of earlier trials there")
