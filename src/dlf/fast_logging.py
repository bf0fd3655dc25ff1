"""LightningModule with its per-step logging costs trimmed: the machinery behind dlf's systems (dlf.systems.base.System
builds on it), kept apart so that the base class a learner opens reads as the course: the loss and the training step.

Nothing here changes what is logged or written; it only skips work whose result is thrown away (measured with
scripts/bench.py: on XOR these calls cost more than the step itself).
"""

from __future__ import annotations

import lightning as L

from dlf import lightning_internals as internals


class FastLogging(L.LightningModule):
    """LightningModule's attribute writes and `log`, without their per-step costs (see each method)."""

    def __setattr__(self, name: str, value) -> None:
        """nn.Module's attribute write, except for the hook name Lightning sets before and after every hook call (about
        40 times a training step): that value is a str or None, never a Parameter, Module or buffer, so nn.Module's
        checks (~2 µs each) always end in the plain write this does directly."""
        if name == internals.HOOK_ATTR:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def log(self, name: str, value, *args, sync_dist: bool | None = None, **kwargs) -> None:
        """LightningModule.log, with two dlf rules.

        A per-step training value (in training_step, on_step and not on_epoch: Lightning's default there) is passed on
        only on the steps whose logs Lightning writes (every trainer.log_every_n_steps); on the others Lightning would
        keep it only for the progress bar, and each call costs ~0.3 ms on CPU, more than a small net's whole step. No
        written number changes; the bar shows the last written value.

        With many processes an epoch-level value is reduced over the ranks (sync_dist) unless the caller says
        otherwise. Lightning's mean is weighted by batch size: sum_r sum_b n_b v_b / sum_r sum_b n_b, so uneven
        validation shares still give the mean over the whole split. Per-step training values stay local (no
        collective per step).

        On the steps it drops, the value last written under that name is reset in Lightning's result collection
        (lightning_internals.forget_written_value): Lightning would otherwise copy it into the progress bar's, the
        callbacks' and the loggers' metrics after every batch, unchanged (~25 µs a step)."""
        hook = internals.current_hook(self)
        if hook == "training_step" and not args and kwargs.get("on_step") is not False and not kwargs.get("on_epoch"):
            trainer = internals.attached_trainer(self)
            if not internals.logs_this_step(trainer):
                internals.forget_written_value(trainer, hook, name)  # its last written value: no per-batch re-copy
                return
        if sync_dist is None:
            trainer = internals.attached_trainer(self)
            many = trainer is not None and trainer.world_size > 1
            on_epoch = kwargs.get("on_epoch")
            sync_dist = many and (on_epoch if on_epoch is not None else hook != "training_step")
        super().log(name, value, *args, sync_dist=sync_dist, **kwargs)

    def log_dict(self, dictionary, *args, sync_dist: bool | None = None, **kwargs) -> None:
        for k, v in dictionary.items():  # through self.log, so the sync_dist default above applies
            self.log(k, v, *args, sync_dist=sync_dist, **kwargs)
