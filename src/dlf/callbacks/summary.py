"""One model summary a run, at the start of fit, and none with trainer.enable_model_summary=false (debug=fast sets it).

Lightning's own switch only stops the summary it would add itself, not one listed among the callbacks; this callback
reads the switch (`enabled: ${trainer.enable_model_summary}` in callbacks/default.yaml). A system that writes its own
table (`summary_table()`, the CNN's layer plan: kernels, strides, padding, shapes) prints that instead of Lightning's,
whose FLOPs and in/out sizes are measured on the system's `example_input_array` (dlf.systems.base.System).

In a sweep, the table is printed once per distinct architecture (the system's module tree, `repr(pl_module)`, with
every layer's sizes): the first job of a sweep to train one prints it and leaves a mark in the sweep dir
(`.model_summaries/<hash>`, made atomically, so jobs of a parallel launcher agree); the others print one line naming
that job and the parameter count (a 5-job XOR sweep printed its 21-parameter table 5 times, 185 lines).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from lightning.pytorch.callbacks import RichModelSummary

from dlf.console import say


class ModelSummary(RichModelSummary):
    def __init__(self, max_depth: int = 2, enabled: bool = True, **summarize_kwargs):
        super().__init__(max_depth=max_depth if enabled else 0, **summarize_kwargs)  # depth 0: Lightning prints nothing
        self.enabled = bool(enabled) and max_depth != 0

    def on_fit_start(self, trainer, pl_module) -> None:
        if not self.enabled:
            return
        first = first_job_with(pl_module)
        if first is not None and trainer.is_global_zero:
            params = sum(p.numel() for p in pl_module.parameters())
            say(f"Model: as job {first}'s summary above ({params:,} parameters)")
            return
        own = pl_module.summary_table() if hasattr(pl_module, "summary_table") else None
        if own is None:
            super().on_fit_start(trainer, pl_module)
        elif trainer.is_global_zero:
            say(own)


def first_job_with(pl_module) -> str | None:
    """In a Hydra multirun, the job that first trained this architecture, if it is not this one (None: print it)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if str(hc.mode) not in ("MULTIRUN", "RunMode.MULTIRUN"):
        return None
    marks = Path(str(hc.sweep.dir)) / ".model_summaries"
    mark = marks / hashlib.sha1(repr(pl_module).encode()).hexdigest()[:16]
    me = str(hc.job.get("num", "?"))
    try:
        marks.mkdir(parents=True, exist_ok=True)
        fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        first = mark.read_text().strip() or "?"
        return None if first == me else first  # a resumed job prints its own again
    except OSError:
        return None
    with os.fdopen(fd, "w") as f:
        f.write(me)
    return None
