"""The sweep's Hydra callback (hydra.callbacks.sweep_summary in configs/hydra/default.yaml): threads per parallel job,
dlf's Optuna sweeper, and sweep.csv, sweep.md, sweep.png and report.html at the end of every multirun.

* Before the sweeper is made: `hydra/sweeper=optuna` runs as dlf's (dlf.run.sweep.use_dlf_optuna), the submitit
  launchers as dlf's (dlf.run.sweep.use_dlf_launcher).
* Before each job: torch gets `cores // n_jobs` threads when the joblib launcher runs n jobs at once (else n jobs x all
  cores oversubscribe the machine).
* At the end of every multirun: sweep.csv, sweep.md, sweep.png and report.html (`report: false`: none) in the sweep dir
  (dlf.tools.compare), and their paths.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dlf.run.sweep import cores, threads_per_job, use_dlf_launcher, use_dlf_optuna

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    """Hydra callback: threads per parallel job; sweep.csv, sweep.md and sweep.png at the end of every multirun."""

    def __init__(self, threads_per_job: int | str | None = "auto", figure: bool = True) -> None:
        self.threads = threads_per_job  # auto: from the launcher (above) | an int | null: leave torch's default
        self.figure = figure

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        use_dlf_optuna(config)
        use_dlf_launcher(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.types import RunMode

        if config.hydra.mode != RunMode.MULTIRUN:
            return
        n = threads_per_job(config.hydra.get("launcher"), cores()) if self.threads == "auto" else self.threads
        if n:
            import torch

            torch.set_num_threads(int(n))
            log.info(f"torch threads for this job: {int(n)} ({cores()} cores, launcher "
                     f"{str(config.hydra.launcher.get('_target_', '?')).rsplit('.', 1)[-1]})")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from dlf.tools.compare import summarize

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            report = summarize(sweep_dir, figure=self.figure, report=bool(config.get("report", True)))
        except Exception as e:  # noqa: BLE001 - the jobs' results are on disk already; the summary must not hide them
            print(f"dlf: sweep summary failed ({type(e).__name__}: {e}); remake it with `dlf-compare {sweep_dir}`")
            return
        print(report.text())
