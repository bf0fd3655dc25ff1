"""Under DDP, every rank draws its own random numbers at every training step.

`seed_everything(seed)` gives every process the same seed: the weights start equal (DDP broadcasts rank 0's anyway),
but left at that every rank would also draw the same GAN noise z, the same CNN shifts and the same dropout masks at
every step, and W processes would train on one draw where they should train on W. Before each training batch this
callback seeds torch's, NumPy's and Python's generators from (run seed, rank, epoch, batch index), as nanoGPT and DETR
offset their seed by the rank. Seeding from the batch, rather than carrying one stream per rank, keeps exact resume:
the checkpoint holds one process's generator state, and a run resumed at batch k draws on every rank what the run
left alone drew at batch k. dlf.run.train adds it to DDP runs only; a single process's stream is untouched.
"""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch


def batch_seed(seed: int, rank: int, epoch: int, batch_idx: int) -> int:
    """A 64-bit seed for one rank's training batch: NumPy's SeedSequence hashes the four numbers, so neighbouring
    ranks, epochs and batches get unrelated streams (seed + rank would give rank 1 of seed s the stream of rank 0 of
    seed s + 1)."""
    words = np.random.SeedSequence([seed, rank, epoch, batch_idx]).generate_state(2)
    return int(words[0]) << 32 | int(words[1])


def seed_all(s: int) -> None:
    """torch's CPU generator and this process's CUDA device's, NumPy's global generator and Python's `random`, from one
    64-bit seed. (Not torch.manual_seed: it asks every device backend whether it is available, ~0.1 ms on CPU.)"""
    torch.default_generator.manual_seed(s)
    if torch.cuda.is_initialized():
        torch.cuda.manual_seed(s)  # the current device: one per DDP process
    np.random.seed(s % 2**32)
    random.seed(s)


class RankNoise(L.Callback):
    """Seeds every generator from (seed, rank, epoch, batch) before each training batch. `seed`: the run's seed (the
    config's `seed`, which `seed_everything` also got), taken modulo 2^63 (SeedSequence takes no negative number)."""

    def __init__(self, seed: int):
        self.seed = int(seed) % 2**63

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        seed_all(batch_seed(self.seed, trainer.global_rank, trainer.current_epoch, batch_idx))
