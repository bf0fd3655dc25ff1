"""Test-only callbacks for DDP runs (added with +callbacks.<name>._target_=ddp_helpers.<Class>)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import lightning as L
import torch


class CountSamples(L.Callback):
    """Counts the validation and test samples every rank evaluates, sums them over the ranks and has rank 0 write
    <run dir>/counts.json: {"val": seen, "val_n": split size, "val_ids": distinct samples seen, ...}. A sample is
    identified by its bytes, so a duplicated or dropped one shows."""

    def __init__(self):
        self.seen = {"val": [], "test": []}

    def _add(self, stage, batch):
        x = batch[0].reshape(len(batch[0]), -1).double()
        self.seen[stage].append(x)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self._add("val", batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._add("test", batch)

    def _gather(self, trainer, stage):
        mine = torch.cat(self.seen[stage]) if self.seen[stage] else torch.zeros(0)
        parts = [None] * trainer.world_size
        if trainer.world_size > 1:
            torch.distributed.all_gather_object(parts, mine)
        else:
            parts = [mine]
        return parts

    def _write(self, trainer, stage, split):
        parts = self._gather(trainer, stage)
        if trainer.is_global_zero:
            rows = torch.cat([p for p in parts if len(p)])
            distinct = len({tuple(r.tolist()) for r in rows})
            path = Path(trainer.default_root_dir) / "counts.json"
            data = json.loads(path.read_text()) if path.exists() else {}
            data.update({stage: len(rows), f"{stage}_n": len(split[0]), f"{stage}_distinct": distinct,
                         f"{stage}_per_rank": [len(p) for p in parts]})
            path.write_text(json.dumps(data))
        self.seen[stage] = []

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking and trainer.current_epoch == 0:
            self._write(trainer, "val", trainer.datamodule.val)
        self.seen["val"] = []

    def on_test_end(self, trainer, pl_module):
        self._write(trainer, "test", trainer.datamodule.test)


class KillGroupAt(L.Callback):
    """SIGKILL the whole process group (every rank, and the launcher) when the optimizer step counter reaches `step`,
    before that step's forward pass, on rank 0."""

    def __init__(self, step: int):
        self.step = int(step)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step and trainer.is_global_zero:
            os.killpg(os.getpgid(0), signal.SIGKILL)


class RecordNoise(L.Callback):
    """Before each training batch (after dlf's RankNoise has seeded it), a digest of this rank's torch generator state:
    the state the step's noise (a GAN's z, dropout masks) is drawn from. Reads the state, draws nothing. Rank 0 writes
    <run dir>/noise.json: {"0": [digest per batch], "1": [...], ...}."""

    def __init__(self):
        self.digests: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        import hashlib

        self.digests.append(hashlib.sha1(torch.get_rng_state().numpy().tobytes()).hexdigest()[:16])

    def on_train_end(self, trainer, pl_module):
        parts = [None] * trainer.world_size
        torch.distributed.all_gather_object(parts, self.digests)
        if trainer.is_global_zero:
            (Path(trainer.default_root_dir) / "noise.json").write_text(json.dumps(dict(enumerate(parts))))
