"""dlf's progress bar: Lightning's Rich bar, redrawn at most max_hz times a second and always at an epoch's last batch
(Lightning's redraws after every batch, which on XOR cost more than the step: scripts/bench.py xor)."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar

from dlf.callbacks.progress import ProgressBar


class _Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        loss = self.w(batch[0]).pow(2).mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _draws(bar, monkeypatch, batches=40) -> list[int]:
    drawn = []
    original = RichProgressBar.on_train_batch_end

    def counting(self, trainer, pl_module, outputs, batch, batch_idx):
        drawn.append(batch_idx)
        return original(self, trainer, pl_module, outputs, batch, batch_idx)

    monkeypatch.setattr(RichProgressBar, "on_train_batch_end", counting)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(batches, 2)), batch_size=1)
    trainer = L.Trainer(max_epochs=1, callbacks=[bar], logger=False, enable_checkpointing=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(_Tiny(), data)
    return drawn


def test_redrawn_at_most_max_hz_and_at_the_last_batch(monkeypatch):
    drawn = _draws(ProgressBar(max_hz=1e-6), monkeypatch)  # one redraw per ~11 days: the first and the last batch
    assert drawn == [0, 39]


def test_every_batch_when_the_steps_are_slower_than_the_rate(monkeypatch):
    drawn = _draws(ProgressBar(max_hz=0), monkeypatch)  # max_hz=0: no limit, Lightning's behaviour
    assert drawn == list(range(40))


def test_drawn_on_the_training_thread(monkeypatch):
    """Lightning's Rich bar asks a thread of its own to draw (while it draws, training waits for the GIL); dlf's draws on
    the thread that trains."""
    import threading

    from rich.live import Live

    threads = []
    original = Live.refresh

    def recording(self):
        threads.append(threading.current_thread())
        return original(self)

    monkeypatch.setattr(Live, "refresh", recording)
    bar = ProgressBar(max_hz=0)
    _draws(bar, monkeypatch)
    assert len(threads) >= 40 and set(threads) == {threading.main_thread()}


def _bar_threads_while_training(bar) -> list[str]:
    """The names of the Rich refresh threads alive at each training step, under `bar`."""
    import threading

    seen: list[str] = []

    def look():
        seen.extend(type(t).__name__ for t in threading.enumerate() if type(t).__name__ == "_RefreshThread")

    class Watching(_Tiny):
        def training_step(self, batch, batch_idx):
            look()
            return super().training_step(batch, batch_idx)

        def validation_step(self, batch, batch_idx):
            look()

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=1)
    trainer = L.Trainer(max_epochs=2, callbacks=[bar], logger=False, enable_checkpointing=False,
                        enable_model_summary=False, accelerator="cpu", limit_val_batches=2)
    trainer.fit(Watching(), data, data)
    trainer.validate(Watching(), data, verbose=False)
    return seen


def test_lightnings_refresh_thread_is_stopped():
    """Lightning's bar starts a thread that wakes 100 times a second to draw when asked; dlf's bar never asks, and
    stops it when Lightning starts it (Lightning's own bar, beside it: the thread runs at every step)."""
    assert len(_bar_threads_while_training(RichProgressBar())) >= 16
    assert _bar_threads_while_training(ProgressBar()) == []
