"""Moved to dlf.run.speed; `model_config` (cfg.model without the keys no system takes) is dlf.run.build.system_config
now. Earlier clones' notebook 04 imports it from here (tests/test_layers.py lists who names this path)."""

from dlf.run.build import system_config as model_config  # noqa: F401
from dlf.run.speed import NoProfiler, apply, profiler  # noqa: F401
