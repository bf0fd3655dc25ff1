"""The run: the command line and its start-up (cli), the run itself (train), the checks of a config (checks, schema),
checkpoints (checkpoint), building a system from a config (build), speed options (speed) and sweeps (sweep).

Built on the course packages (nets, systems, data, metrics, callbacks) and the foundation; used by dlf.tools.
Importing any of it registers the resolvers that name a run's and a multirun job's dir (dlf.run.sweep), in every
process that runs a job (joblib and submitit workers import this package when they unpickle the task).
"""

from dlf.run import sweep as _sweep  # noqa: F401 - ${dlf_job_dir:}, ${dlf_records:}
