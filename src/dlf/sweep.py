"""Moved: the sweep's helpers to dlf.run.sweep, its Hydra callback to dlf.tools.summary. Old run dirs' `.hydra/` name
`dlf.sweep.SweepSummary` (`--experimental-rerun` makes it again): both keep importing here (tests/test_layers.py)."""

from dlf.run.sweep import MAX_NAME, continue_job, cores, job_dir_name, records_dir, threads_per_job  # noqa: F401
from dlf.tools.summary import SweepSummary  # noqa: F401
