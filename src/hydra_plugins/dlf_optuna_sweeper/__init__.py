"""dlf's Optuna sweeper: hydra-optuna-sweeper's, with a failed trial recorded as failed and the search going on.

`hydra/sweeper=optuna` (and every `hparams_search=*`) composes the plugin's config; dlf.run.sweep.use_dlf_optuna then
names this class as its `_target_` (and max_failure_rate 1.0) before Hydra makes the sweeper. Hydra makes sweepers
only from the `hydra_plugins` package, hence this package beside `dlf` (installed with it). Without the [sweep] extra
it defines nothing (Hydra imports every module of `hydra_plugins` at start-up).
A job that failed, diverged or never validated returns NaN (`dlf.run.train._task`). The plugin hands NaN to
`study.tell(values=[nan])`, which Optuna refuses; its fallback then tells FAIL *with* that value, which Optuna refuses
too, and that ValueError ended the whole search after its first bad trial. Here the launcher's returns pass through
`_Trials` first: a NaN becomes Hydra's own failed JobReturn, so the plugin tells Optuna `TrialState.FAIL` with no value
(the sampler leaves the trial out of its model), logs "Failed experiment: job <n> ..." and asks for the next trial.
Where every trial failed, Optuna has no best trial (`study.best_trial` raises): one line says so and the sweep ends
as any other, with its summary (dlf.tools.summary.SweepSummary) and `dlf.run.cli`'s "k of n jobs of the sweep failed".
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus

from dlf.errors import DlfError

try:
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper as _PluginSweeper
except ImportError:  # no [sweep] extra: nothing to extend (dlf.run.sweep.use_dlf_optuna never names this class then)
    _PluginSweeper = None


class TrialFailed(DlfError):
    """A trial with no value for Optuna: the job failed, diverged, or ended before it logged the monitored metric."""


class _FailedJob(JobReturn):
    """A finished job that has no value for the sweeper. Hydra's JobReturn prints "Error executing job with overrides"
    when such a value is read; the job printed its own line already, so this one only raises."""

    @property
    def return_value(self):
        raise self._return_value

    @return_value.setter
    def return_value(self, value) -> None:
        self._return_value = value


def _why(ret: JobReturn) -> str:
    """The job's own account of itself (its result.json), for the sweeper's "Failed experiment" line."""
    out = Path(str(ret.hydra_cfg.hydra.runtime.output_dir)) if ret.hydra_cfg is not None else None
    num = ret.hydra_cfg.hydra.job.num if ret.hydra_cfg is not None else "?"
    try:
        res = json.loads((out / "result.json").read_text())
    except (OSError, ValueError, TypeError):
        return f"job {num} returned no value (no result.json in {out})"
    return f"job {num} {res.get('status')}: {res.get('error')}"


class _Trials:
    """The sweeper's launcher, seen through: a job that returned NaN (or nothing a float can hold) is a failed job."""

    def __init__(self, launcher) -> None:
        self.launcher = launcher
        self.completed = 0  # trials that returned a value

    def launch(self, job_overrides, initial_job_idx: int):
        returns = list(self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx))
        for i, ret in enumerate(returns):
            if ret.status != JobStatus.COMPLETED:
                continue
            try:
                ok = math.isfinite(float(ret._return_value))
            except (TypeError, ValueError):
                ok = False
            if ok:
                self.completed += 1
            else:
                returns[i] = _FailedJob(overrides=ret.overrides, cfg=ret.cfg, hydra_cfg=ret.hydra_cfg,
                                        working_dir=ret.working_dir, task_name=ret.task_name, status=JobStatus.FAILED,
                                        _return_value=TrialFailed(_why(ret)))
        return returns


class OptunaSweeper(_PluginSweeper or object):  # without the plugin: a plain class that Hydra's scan ignores
    """hydra-optuna-sweeper's sweeper: the same search, with failed trials told to Optuna as failed (see above), and a
    study every process of a task can share (dlf_optuna_sweeper.shared, for a single objective and any sampler but the
    grid): n_trials counted over the study, job dirs numbered by trial, a killed search continued, pruned trials."""

    def setup(self, *, hydra_context, task_function, config) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.sweeper.launcher = _Trials(self.sweeper.launcher)

    def sweep(self, arguments):
        from hydra_plugins.dlf_optuna_sweeper import shared

        try:
            if shared.applies(self.sweeper):
                return shared.sweep(self.sweeper, arguments)
            return super().sweep(arguments)
        except ValueError as e:  # study.best_trial: "No trials are completed yet."
            if self.sweeper.launcher.completed:
                raise
            print(f"dlf: no trial of the search returned a value, so Optuna has no best parameters ({e}): "
                  "see each job's result.json")
