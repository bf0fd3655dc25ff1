"""Test-only callbacks that interrupt a real training process at an exact point (added with +callbacks.kill=...)."""

from __future__ import annotations

import os
import signal

import lightning as L


class KillAt(L.Callback):
    """Send `sig` (SIGKILL, SIGTERM, SIGINT) to this process when the optimizer step counter reaches `step`.

    where=batch_start: before that step's forward pass; where=batch_end: after it (and after any checkpoint of that
    step); where=val_end: at the end of the validation that follows epoch `step` (counted in epochs)."""

    def __init__(self, step: int, sig: str = "SIGKILL", where: str = "batch_start"):
        self.step, self.sig, self.where = int(step), getattr(signal, sig), where
        self.fired = False

    def _fire(self):
        if not self.fired:
            self.fired = True
            os.kill(os.getpid(), self.sig)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.where == "batch_start" and trainer.global_step == self.step:
            self._fire()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.where == "batch_end" and trainer.global_step == self.step:
            self._fire()

    def on_validation_end(self, trainer, pl_module):
        if self.where == "val_end" and not trainer.sanity_checking and trainer.current_epoch == self.step:
            self._fire()
