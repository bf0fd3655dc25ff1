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


class PoisonAt(L.Callback):
    """Make one weight NaN at optimizer step `step` (as a too-large learning rate would), before that step's end."""

    def __init__(self, step: int):
        self.step = int(step)

    def on_before_zero_grad(self, trainer, pl_module, optimizer):
        if trainer.global_step == self.step:
            import torch

            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("nan")


class KillDuringSave(L.Callback):
    """SIGKILL this process in the middle of writing its `n`-th checkpoint (after part of the bytes are on disk)."""

    def __init__(self, n: int = 2):
        self.n = int(n)

    def setup(self, trainer, pl_module, stage):
        import dlf.checkpoint as ck

        real, count = ck._torch_save, [0]

        def torn(obj, f):
            count[0] += 1
            if count[0] < self.n:
                return real(obj, f)
            f.write(b"PK\x03\x04" + b"\0" * 4096)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        ck._torch_save = torn


class KillGroupAt(KillAt):
    """Like KillAt, but in job `job` of a multirun only, and to the whole process group (the sweep's main process and
    its launcher's workers: start the sweep with start_new_session=True). Fires once: it creates `marker` first and
    never fires while that file exists, so the same command (plus ckpt_path=last) can continue the sweep."""

    def __init__(self, step: int, sig: str = "SIGKILL", where: str = "batch_start", job: int = 0, marker: str = ""):
        super().__init__(step, sig, where)
        self.job, self.marker = int(job), marker

    def _fire(self):
        from hydra.core.hydra_config import HydraConfig

        if self.fired or HydraConfig.get().job.num != self.job or (self.marker and os.path.exists(self.marker)):
            return
        self.fired = True
        if self.marker:
            open(self.marker, "w").close()
        os.killpg(os.getpgid(0), self.sig)
