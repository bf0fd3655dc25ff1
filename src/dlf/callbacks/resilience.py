"""RunGuard: what makes a run resumable bit-for-bit and stops it cleanly when something goes wrong.

- RNG states (python, numpy, torch CPU and CUDA) travel in every checkpoint and are restored on resume, so a model
  that draws noise in its training step (dropout, a GAN's z) draws the same numbers after a resume. Sampling done
  outside the training step (figures, validation samples) should use its own `torch.Generator`.
- A non-finite loss or weight stops the run with one line naming the step, and no checkpoint is written with a
  non-finite weight, so last.ckpt and best.ckpt keep the last good weights. The loss is checked at every step (one
  number), the weights before every checkpoint write and every WEIGHTS_EVERY steps (a weight that is no longer finite
  makes the next loss non-finite in any net whose loss it reaches, so the loss check usually stops the run one step
  after it); with several processes, at every step, so that every rank stops at the same step.
- SIGINT (Ctrl+C) and SIGTERM set a flag; at the end of the current training batch (a consistent point: the optimizer
  step is complete) the guard writes checkpoints/last.ckpt and stops the run. A second SIGINT stops at once.
- The monitored metric must exist: after the first validation an unknown `monitor=` fails in one line that lists the
  logged metrics.
- The checkpoint's `dlf` entry also records the model config and task, so a checkpoint of another model is refused.
- At the start of a fit, temporary checkpoint files left by a writer that was killed mid-write are removed.
"""

from __future__ import annotations

import math
import random
import signal
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint

from dlf import lightning_internals as internals
from dlf.errors import Diverged, DlfError
from dlf.faults import quiet_writer_threads, remove_stale_temps
from dlf.loggers import flush_events


class RunInterrupted(Exception):
    """The run stopped on SIGINT/SIGTERM after saving `path`; `code` is the exit status (130 or 143)."""

    def __init__(self, signame: str, path: str | None, code: int):
        self.signame, self.path, self.code = signame, path, code
        saved = f"saved {path}" if path else "no checkpoint saved (checkpointing is off)"
        super().__init__(f"stopped by {signame}, {saved}: resume with the same command plus ckpt_path=last"
                         if path else f"stopped by {signame}, {saved}")


def rng_state() -> dict:
    """All global RNG states as tensors and plain numbers (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    py = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": py[0], "state": list(py[1]), "gauss": py[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _losses(outputs) -> list[torch.Tensor]:
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, dict):
        return [v for v in outputs.values() if isinstance(v, torch.Tensor) and v.numel() == 1]
    return []


def checkpoint_dirs(trainer) -> set[Path]:
    """The folders the Trainer's checkpoint callbacks write into."""
    dirs = {Path(c.path).parent for c in trainer.callbacks if isinstance(c, LastCheckpoint)}
    dirs |= {Path(c.dirpath) for c in trainer.checkpoint_callbacks if getattr(c, "dirpath", None)}
    return dirs


class LastCheckpoint(Checkpoint):
    """Keeps <dirpath>/last.ckpt current: every `every_n_train_steps` optimizer steps (0: off) and at the end of every
    training epoch, including the last. (ModelCheckpoint's own save_last refreshes last.ckpt only when `best` improves.)
    A Checkpoint subclass, so Lightning runs it after the other callbacks (after RunGuard's divergence check)."""

    def __init__(self, dirpath: str, every_n_train_steps: int = 100, filename: str = "last.ckpt"):
        self.path = str(Path(dirpath) / filename)
        self.every = int(every_n_train_steps or 0)
        self._saved_at = -1

    def save(self, trainer) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        trainer.save_checkpoint(self.path, weights_only=False)
        self._saved_at = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # Not at the epoch's last batch: its end-of-epoch save follows, after the epoch's validation. Resumed from a
        # save at that batch end, Lightning would not run the validation again (it counts it as run), and what that
        # validation decides (the best checkpoint, early stopping, scheduler=plateau) would be lost.
        if batch_idx + 1 >= trainer.num_training_batches:
            return
        if self.every and trainer.global_step % self.every == 0 and trainer.global_step != self._saved_at:
            self.save(trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        self.save(trainer)


def max_abs(tensors: list[torch.Tensor]) -> torch.Tensor:
    """max |t| over every element of every tensor, NaN if any element is NaN: finite iff every element is finite.

    Two foreach kernels (|t|, then each tensor's max) and one max over the results, with no per-tensor dispatch in
    Python. The same number as the inf-norm, torch._foreach_norm(tensors, inf) (which torch.nn.utils.get_total_norm
    uses), whose CPU kernel is not vectorised: on one thread 184 against 36 us for the digits CNN (62k weights), 54
    against 19 us for MNIST-1D's MLP, 2.7 against 0.22 ms for a million. A torch without _foreach_max takes the norm."""
    with torch.no_grad():
        if hasattr(torch, "_foreach_max"):
            per_tensor = torch._foreach_max(torch._foreach_abs(tensors))
        else:
            per_tensor = torch._foreach_norm(tensors, float("inf"))
        return torch.stack(per_tensor).max()


class RunGuard(L.Callback):
    """See the module docstring. `meta` (model config, task name, run dir) is written into every checkpoint."""

    def __init__(self, meta: dict | None = None):
        self.meta = dict(meta or {})
        self._signal: str | None = None
        self._old_handlers: dict = {}
        self._active = False
        self._monitor_checked = False
        self._params: list | None = None  # listed at the first weight check of a fit

    # --- signals -------------------------------------------------------------------------------------------------
    def _handler(self, signum, frame):
        name = signal.Signals(signum).name
        if not self._active or (self._signal == "SIGINT" and name == "SIGINT"):
            # outside fit, or a second Ctrl+C: stop now (last.ckpt is written atomically, so it stays whole)
            if name == "SIGINT":
                raise KeyboardInterrupt
            raise SystemExit(143)
        self._signal = name

    def install_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old_handlers[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread
                pass

    def restore_handlers(self) -> None:
        for sig, h in self._old_handlers.items():
            signal.signal(sig, h)
        self._old_handlers = {}

    def setup(self, trainer, pl_module, stage):
        if stage == "fit":
            self._active, self._params = True, None
            self.install_handlers()
            quiet_writer_threads()  # a full disk in TensorBoard's writer thread: one line from the main thread
            if trainer.is_global_zero:  # temporary checkpoint files of a writer killed in an earlier run of this dir
                for folder in checkpoint_dirs(trainer):
                    remove_stale_temps(folder)

    def on_fit_start(self, trainer, pl_module):
        # Lightning installs its SIGTERM handler after `setup`; it would stop the run after the current batch without
        # a checkpoint (and exit 0). Ours replaces it: save last.ckpt at the batch end, then exit 143.
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                signal.signal(sig, self._handler)
            except ValueError:
                pass

    def teardown(self, trainer, pl_module, stage):
        if stage == "fit":
            self._active, self._params = False, None
            self.restore_handlers()

    def stop_if_signalled(self, trainer) -> None:
        if self._signal is None:
            return
        path = None
        last = [c for c in trainer.callbacks if isinstance(c, LastCheckpoint)]
        ckpt_cb = trainer.checkpoint_callback
        if last:
            path = last[0].path
        elif ckpt_cb is not None and ckpt_cb.dirpath:
            path = str(Path(ckpt_cb.dirpath) / "last.ckpt")
        if path:
            trainer.save_checkpoint(path, weights_only=False)
        raise RunInterrupted(self._signal, path, 130 if self._signal == "SIGINT" else 143)

    def on_train_start(self, trainer, pl_module):
        self.on_fit_start(trainer, pl_module)
        # Loaders of data modules that override train_dataloader() still take their position from the Trainer.
        dm = trainer.datamodule
        pos = getattr(dm, "fit_position", None)
        for dl in internals.train_loaders(trainer):
            if pos is not None and hasattr(dl, "position") and dl.position is None:
                dl.position = pos

    # --- divergence ----------------------------------------------------------------------------------------------
    WEIGHTS_EVERY = 50  # steps between weight checks (also checked before every checkpoint write)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        losses = _losses(outputs)
        if losses:  # one number and one device sync a step: finite iff every loss is (a sum of two huge ones may
            # overflow: then the per-loss check below finds nothing and the run goes on)
            total = losses[0] if len(losses) == 1 else torch.stack([v.detach().reshape(()) for v in losses]).sum()
            if not math.isfinite(float(total)):
                self._find_divergence(trainer, pl_module, losses)
        if trainer.global_step % self.WEIGHTS_EVERY == 0 or trainer.world_size > 1:
            self.check_finite_weights(trainer, pl_module)
        self.stop_if_signalled(trainer)

    def check_finite_weights(self, trainer, pl_module) -> None:
        """Stop with Diverged if a weight is no longer finite: max |w| over every weight (foreach kernels), one sync."""
        if self._params is None:  # the weights of this fit, listed once (walking the module tree each time costs)
            self._params = [p for p in pl_module.parameters() if p.numel()]
        if self._params and not bool(torch.isfinite(max_abs(self._params))):
            self._find_divergence(trainer, pl_module, [])

    def _find_divergence(self, trainer, pl_module, losses) -> None:
        step = trainer.global_step
        for loss in losses:
            if not torch.isfinite(loss.detach()).all():
                self._diverged(trainer, f"the training loss is {float(loss)}", step)
        for name, p in pl_module.named_parameters():
            if not torch.isfinite(p.detach()).all():
                self._diverged(trainer, f"weight {name} is no longer finite", step)

    @staticmethod
    def _diverged(trainer, what: str, step: int):
        lr = ""
        if trainer.optimizers:
            lr = f" (lr={trainer.optimizers[0].param_groups[0]['lr']:g})"
        kept = ""
        last = [c.path for c in trainer.callbacks if isinstance(c, LastCheckpoint) and Path(c.path).exists()]
        if last:
            kept = f"; the last good checkpoint is kept: {last[0]}"
        raise Diverged(f"training diverged at step {step}: {what}{kept}: lower the learning rate{lr}, e.g. "
                       "optimizer.lr=0.001, or clip gradients with trainer.gradient_clip_val=1.0")

    # --- monitor -------------------------------------------------------------------------------------------------
    def on_validation_end(self, trainer, pl_module):
        if self._monitor_checked or trainer.sanity_checking:
            return
        self._monitor_checked = True
        for cb in trainer.checkpoint_callbacks:
            key = getattr(cb, "monitor", None)
            if key and key not in trainer.callback_metrics:
                logged = ", ".join(sorted(trainer.callback_metrics)) or "nothing"
                raise DlfError(f"monitor={key} is not a metric this run logs (it logs {logged}): set monitor= to "
                               "one of those, e.g. monitor=val/loss")

    def on_train_epoch_end(self, trainer, pl_module):
        self.stop_if_signalled(trainer)

    # --- what travels in the checkpoint --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"rng": rng_state()}

    def load_state_dict(self, state: dict) -> None:
        if "rng" in state:
            set_rng_state(state["rng"])

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        # Lightning calls this while it builds the checkpoint, before a byte is written: non-finite weights stop the
        # run here, so no checkpoint (last.ckpt, best.ckpt, the one a signal asks for) ever holds them
        self.check_finite_weights(trainer, pl_module)
        flush_events(trainer)  # every event up to this step on disk with the checkpoint (dlf.loggers)
        checkpoint["dlf"] = {**self.meta, "global_step": trainer.global_step}
