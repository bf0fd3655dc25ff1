"""dlf: the deep-learning foundations model zoo (PyTorch + Lightning + Hydra)."""

__version__ = "0.1.0"

from dlf import sweep as _sweep  # noqa: E402,F401 - registers ${dlf_job_dir:}, which names multirun job dirs in every process
