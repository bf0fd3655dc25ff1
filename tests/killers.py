"""Test-only callbacks that interrupt a real training process at an exact point (added with +callbacks.kill=...)."""

from __future__ import annotations

import os
import signal

import lightning as L


class KillAt(L.Callback):
    """Send `sig` (SIGKILL, SIGTERM, SIGINT) to this process when the optimizer step counter reaches `step`.

    where=batch_start: before that step's forward pass; where=batch_end: after it (and after any checkpoint of that
    step); where=val_end: at the end of the validation that follows epoch `step` (counted in epochs); where=test_start:
    when the test stage starts (training over, its last checkpoint written, result.json not yet)."""

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

    def on_test_start(self, trainer, pl_module):
        if self.where == "test_start":
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
        import dlf.run.checkpoint as ck

        real, count = ck._torch_save, [0]

        def torn(obj, f):
            count[0] += 1
            if count[0] < self.n:
                return real(obj, f)
            f.write(b"PK\x03\x04" + b"\0" * 4096)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        ck._torch_save = torn


class LimitFileSize(L.Callback):
    """`ulimit -f <limit>` from optimizer step `step` on: the kernel then refuses (EFBIG) any write that would make a
    file larger than `limit` bytes, as a full disk or an exhausted quota would. SIGXFSZ is ignored so that the write
    raises OSError instead of killing the process. Runs before the checkpoint callbacks of the same step."""

    def __init__(self, step: int, limit: int = 512):
        self.step, self.limit = int(step), int(limit)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            import resource

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


class FillDisk(L.Callback):
    """At optimizer step `step` (batch end, before that step's checkpoints) fill the file system of `folder` with
    `folder`/.filler until the kernel says ENOSPC: every later write there fails as on a full disk."""

    def __init__(self, step: int, folder: str):
        self.step, self.folder = int(step), folder

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            import errno

            with open(os.path.join(self.folder, ".filler"), "wb", buffering=0) as f:
                chunk = b"\0" * 4096
                while True:
                    try:
                        f.write(chunk)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        if len(chunk) == 1:
                            break
                        chunk = chunk[: len(chunk) // 2]


def _counting_mnist1d():
    from dlf.data.mnist1d import MNIST1DDataModule

    class CountingMNIST1D(MNIST1DDataModule):
        """MNIST-1D whose generator leaves a file <builds_dir>/<pid> each time it runs (and takes `delay` s longer),
        so a test can count how many of the processes started together built the cache."""

        def __init__(self, builds_dir: str, delay: float = 0.5, **kw):
            super().__init__(**kw)
            self.builds_dir, self.delay = builds_dir, float(delay)

        def build(self) -> None:
            import time

            import dlf.data.mnist1d as m

            real = m.make_mnist1d

            def counted(*a, **k):
                os.makedirs(self.builds_dir, exist_ok=True)
                open(os.path.join(self.builds_dir, str(os.getpid())), "w").close()
                time.sleep(self.delay)
                return real(*a, **k)

            m.make_mnist1d = counted
            try:
                super().build()
            finally:
                m.make_mnist1d = real

    return CountingMNIST1D


def __getattr__(name):  # the class is made on first use: importing this module must not import dlf's data code
    if name == "CountingMNIST1D":
        return _counting_mnist1d()
    raise AttributeError(name)


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


class SpoilJobs(L.Callback):
    """In a multirun, spoil chosen jobs by number (Hydra's job.num): `diverge` jobs get NaN weights after their first
    batch (dlf's guard then reports "diverged"), `fail` jobs raise at their first step, `blind` jobs never validate
    (limit_val_batches=0); every other job trains as asked."""

    def __init__(self, diverge=(), fail=(), blind=()):
        self.diverge, self.fail, self.blind = ({int(j) for j in js} for js in (diverge, fail, blind))

    @staticmethod
    def _job() -> int:
        from hydra.core.hydra_config import HydraConfig

        return int(HydraConfig.get().job.num)

    def setup(self, trainer, pl_module, stage):
        if stage == "fit" and self._job() in self.blind:
            trainer.limit_val_batches = 0
            trainer.num_sanity_val_steps = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == 0 and self._job() in self.diverge:  # the next batch's loss is NaN (every family, the GAN too)
            for p in pl_module.parameters():
                p.data.fill_(float("nan"))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._job() in self.fail:
            raise RuntimeError(f"job {self._job()} spoiled on purpose (tests/killers.py SpoilJobs)")


class PauseAt(L.Callback):
    """Sleep `seconds` before optimizer step `step`, once: it creates `marker` first and never pauses while that file
    exists (a requeued or resumed run goes straight on). Gives a test time to act on a running job (scontrol requeue).
    Under Slurm the marker holds the paused job's id (<array job>_<task> for an array task), the one to act on."""

    def __init__(self, step: int, marker: str, seconds: float = 120):
        self.step, self.marker, self.seconds = int(step), marker, float(seconds)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        import time

        if trainer.global_step == self.step and not os.path.exists(self.marker):
            if trainer.is_global_zero:
                env = os.environ
                job = (f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}" if "SLURM_ARRAY_TASK_ID" in env
                       else env.get("SLURM_JOB_ID", ""))
                with open(self.marker, "w") as f:
                    f.write(job)
            time.sleep(self.seconds)
