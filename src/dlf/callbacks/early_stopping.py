"""Early stopping: Lightning's EarlyStopping (callbacks=early_stopping), with one addition, so that a resume is exact.

Lightning saves the callback's state (the wait count, the best value, whether and why it stopped) in every checkpoint,
and dlf's last.ckpt is written at the end of the epoch in which it stopped, after it decided (Lightning runs checkpoint
callbacks after the others). But the Trainer's `should_stop` is not saved: resumed from that checkpoint with
`ckpt_path=last`, Lightning's callback would train one epoch more before it checked again, and the run would end with
other weights than the run that stopped. Here a run that was stopped stays stopped: resumed, it trains no further and
goes on to test its best checkpoint, as the run that stopped did.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason


class EarlyStopping(LightningEarlyStopping):
    """Lightning's EarlyStopping; restored from a checkpoint written after it stopped the run, it stops it again
    before the first batch."""

    def on_train_start(self, trainer, pl_module) -> None:
        if self.stopping_reason is not EarlyStoppingReason.NOT_STOPPED:
            trainer.should_stop = True
