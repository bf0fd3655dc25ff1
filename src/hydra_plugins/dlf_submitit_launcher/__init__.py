"""dlf's submitit launchers: hydra-submitit-launcher's, with a job that ended without a result recorded as a row.

`hydra/launcher=slurm` (configs/hydra/launcher/slurm.yaml) names SlurmLauncher here; `hydra/launcher=submitit_slurm`
and `submitit_local` run as these classes too (dlf.run.sweep.use_dlf_launcher, before Hydra makes the launcher).
Hydra makes launchers only from the `hydra_plugins` package, hence this package beside `dlf`. Without the [sweep]
extra it defines nothing.

The plugin's launch() ends with `[j.results()[0] for j in jobs]`: the first job Slurm cancelled (scancel, a time limit
without requeue, out of memory, a node failure) or that died without a result raised submitit's UncompletedJobError
there, and that ended the whole sweep with a traceback, the later jobs' results unread. Here every job is waited for;
one with no result gets a result.json in its job dir (status `interrupted` when Slurm cancelled it or it hit its time
limit, else `failed`; the error names the Slurm state and the job's log) and returns NaN, as dlf's task does for a
failed job: the sweep goes on, its summary has the row, and the multirun exits 1 with one line
(dlf.run.cli.Startup.on_multirun_end). A submission sbatch refuses (more CPUs, memory or GPUs than the cluster has)
is one line naming what the jobs asked for, what the nodes have and the keys to change.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from dlf.errors import DlfError

try:
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher as _plugin
except ImportError:  # no [sweep] extra: nothing to extend (dlf.run.sweep.use_dlf_launcher never names these classes)
    _plugin = None

INTERRUPTED = ("CANCELLED", "TIMEOUT", "PREEMPTED", "REQUEUED", "DEADLINE")  # Slurm stopped it: resume with ckpt_path=last


def _refused(params: dict, error: Exception) -> DlfError:
    """sbatch refused the job array: its reason, what the jobs asked for, what the cluster's partitions have."""
    asked = ", ".join(f"{k}={params[k]}" for k in ("partition", "gpus_per_node", "cpus_per_task", "mem_gb", "nodes",
                                                    "tasks_per_node") if params.get(k) is not None)
    reason = " ".join(str(error).split()) or type(error).__name__
    try:
        have = subprocess.run(["sinfo", "-h", "-o", "%P %D node(s) of %c CPUs, %m MB, gres %G"], capture_output=True,
                              text=True, timeout=30).stdout.strip().replace("\n", "; ")
    except (OSError, subprocess.SubprocessError):
        have = ""
    return DlfError(f"Slurm refused the sweep's jobs ({reason}): they ask for {asked}; the cluster has "
                    f"{have or 'no partition sinfo lists'}: ask for what a node has, e.g. hydra.launcher.gpus_per_node=0 "
                    "hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=1 (or hydra.launcher.partition=<one that has "
                    "them>)")


def _job_dir(launcher, overrides: list[str], num: int) -> tuple[Path, object]:
    """The job dir Hydra gives job `num` of these overrides (the sweep dir and the job's subdir), and its config."""
    from omegaconf import OmegaConf, open_dict

    cfg = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    with open_dict(cfg.hydra.job):
        cfg.hydra.job.num = num
    return Path(str(cfg.hydra.sweep.dir)) / str(OmegaConf.select(cfg, "hydra.sweep.subdir")), cfg


def _no_result(launcher, job, overrides: list[str], num: int, error: Exception, started: float):
    """A job with no result: its row (result.json) unless the job wrote one itself in this sweep; its JobReturn."""
    from hydra.core.utils import JobReturn, JobStatus, filter_overrides

    from dlf.run.train import Outcome, write_result

    job_dir, cfg = _job_dir(launcher, overrides, num)
    state = str(getattr(job, "state", "UNKNOWN") or "UNKNOWN").split()[0]
    status = "interrupted" if state.startswith(INTERRUPTED) else "failed"
    log = getattr(getattr(job, "paths", None), "stderr", "?")
    line = (f"Slurm job {job.job_id} ended {state} without a result ({type(error).__name__}; its log: {log})"
            + (": rerun the sweep with ckpt_path=last hydra.sweep.dir=" + str(cfg.hydra.sweep.dir)
               + " (its finished jobs are not run again)" if status == "interrupted" else ""))
    result = job_dir / "result.json"
    try:
        own = json.loads(result.read_text()) if result.stat().st_mtime >= started - 1 else None
    except (OSError, ValueError):
        own = None
    if own is None or own.get("status") == "ok":  # "ok" yet no result: the job died after writing it
        task = list(filter_overrides(overrides))
        write_result(job_dir, cfg, status, line, Outcome(), 0.0, task)
    print(f"dlf: job {num} {status} ({' '.join(filter_overrides(overrides)) or 'no overrides'}): {line}")
    ret = JobReturn(overrides=list(overrides), cfg=cfg, hydra_cfg=cfg, working_dir=str(job_dir),
                    task_name=str(cfg.hydra.job.name), status=JobStatus.COMPLETED)
    ret.return_value = float("nan")
    return ret


if _plugin is not None:

    class _Rows:
        """launch(): the plugin's submission, then every job's result, a row for each job without one."""

        def launch(self, job_overrides, initial_job_idx: int):
            import submitit

            jobs, started = [], time.time()
            real_map = submitit.AutoExecutor.map_array

            def recording_map(executor, *args):
                try:
                    jobs.extend(real_map(executor, *args))
                except (submitit.core.utils.FailedJobError, subprocess.CalledProcessError) as e:  # sbatch said no
                    raise _refused(self.params, e) from None
                return jobs

            submitit.AutoExecutor.map_array = recording_map  # the plugin's own launch, whose results() we take over
            try:
                return super().launch(job_overrides, initial_job_idx)  # every job returned its value
            except Exception:  # noqa: BLE001 - a job without a result: every job is collected below
                if not jobs:
                    raise
            finally:
                submitit.AutoExecutor.map_array = real_map
            return [self._collect(j, list(o), initial_job_idx + i, started)
                    for i, (j, o) in enumerate(zip(jobs, job_overrides))]

        def _collect(self, job, overrides, num, started):
            try:
                return job.results()[0]
            except Exception as e:  # noqa: BLE001 - submitit's UncompletedJobError / FailedJobError
                return _no_result(self, job, overrides, num, e, started)

    class SlurmLauncher(_Rows, _plugin.SlurmLauncher):
        """hydra-submitit-launcher's Slurm launcher, each job without a result a row of the sweep (see above)."""

    class LocalLauncher(_Rows, _plugin.LocalLauncher):
        """hydra-submitit-launcher's local launcher, each job without a result a row of the sweep (see above)."""
