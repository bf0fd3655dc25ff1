"""What every dlf system shares: the optimizer (and scheduler) from the top-level config groups, and the data facts."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch

from dlf.data.base import DataFacts
from dlf.errors import DlfError


class System(L.LightningModule):
    """Base LightningModule. `optimizer` and `scheduler` are partials from configs/optimizer and configs/scheduler;
    `facts` are the data module's DataFacts. Subclasses say which data kinds they accept (ACCEPTS)."""

    ACCEPTS: tuple[str, ...] = ()  # DataFacts.kind values this family can take

    def __init__(self, facts: DataFacts, optimizer: Callable | None = None, scheduler: Callable | None = None):
        super().__init__()
        if self.ACCEPTS and facts.kind not in self.ACCEPTS:
            raise DlfError(f"model {type(self).__name__} cannot take data={facts.name} (its samples are "
                           f"'{facts.kind}', this model takes {' or '.join(self.ACCEPTS)}): pick a matching data=...")
        self.facts = facts
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            return torch.optim.Adam(self.parameters())
        opt = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return opt
        sched = self.scheduler_factory(opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
