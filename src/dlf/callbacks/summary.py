"""One model summary a run, at the start of fit, and none with trainer.enable_model_summary=false (debug=fast sets it).

Lightning's own switch only stops the summary it would add itself, not one listed among the callbacks; this callback
reads the switch (`enabled: ${trainer.enable_model_summary}` in callbacks/default.yaml). A system that writes its own
table (`summary_table()`, the CNN's layer plan: kernels, strides, padding, shapes) prints that instead of Lightning's,
whose FLOPs and in/out sizes are measured on the system's `example_input_array` (dlf.systems.base.System).
"""

from __future__ import annotations

from lightning.pytorch.callbacks import RichModelSummary

from dlf.console import say


class ModelSummary(RichModelSummary):
    def __init__(self, max_depth: int = 2, enabled: bool = True, **summarize_kwargs):
        super().__init__(max_depth=max_depth if enabled else 0, **summarize_kwargs)  # depth 0: Lightning prints nothing
        self.enabled = bool(enabled) and max_depth != 0

    def on_fit_start(self, trainer, pl_module) -> None:
        if not self.enabled:
            return
        own = pl_module.summary_table() if hasattr(pl_module, "summary_table") else None
        if own is None:
            super().on_fit_start(trainer, pl_module)
        elif trainer.is_global_zero:
            say(own)
