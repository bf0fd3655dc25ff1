"""dlf's progress bar: Lightning's Rich bar, redrawn at most max_hz times a second and always at an epoch's last batch
(Lightning's redraws after every batch, which on XOR cost more than the step: scripts/bench.py xor)."""

from __future__ import annotations

import time

import lightning as L
import pytest
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


def _row(bar, task_id) -> tuple[str, str, str]:
    """One row of the bar: its description, what the speed column dlf's bar uses shows, what Lightning's would."""
    from lightning.pytorch.callbacks.progress.rich_progress import ProcessingSpeedColumn

    task = next(t for t in bar.progress.tasks if t.id == task_id)
    ours = next(c for c in bar.progress.columns if isinstance(c, ProcessingSpeedColumn))
    lightnings = ProcessingSpeedColumn(style=ours.style)
    return task.description.strip(), ours.render(task).plain, lightnings.render(task).plain


class _Reading(_Tiny):
    """Reads the bar's training row at each epoch's end (after the bar drew the epoch's last batch)."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[str, str, str]] = []

    def on_train_epoch_end(self):
        bar = self.trainer.progress_bar_callback
        self.rows.append(_row(bar, bar.train_progress_bar_id))


def _read_rows(bar, **limits) -> list[tuple[str, str, str]]:
    module = _Reading()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(10, 2)), batch_size=1)
    trainer = L.Trainer(callbacks=[bar], logger=False, enable_checkpointing=False, enable_model_summary=False,
                        accelerator="cpu", **limits)
    trainer.fit(module, data)
    return module.rows


def test_the_training_speed_is_measured_across_epochs():
    """Drawn at most once a ~11 days, the bar draws each epoch's last batch (and the run's first): Lightning's column
    reads Rich's per-epoch estimate, which has one update an epoch after the first, and shows 0.00it/s; dlf's shows
    the batches a second between its draws."""
    rows = _read_rows(ProgressBar(max_hz=1e-6), max_epochs=4)
    assert len(rows) == 4
    for _, ours, lightnings in rows[1:]:
        assert lightnings == "0.00it/s"
        assert ours.endswith("it/s") and float(ours[:-4]) > 0


class _ReadingStages(_Tiny):
    """What the speed column shows for the validation and test rows once their one batch is drawn: dlf's, Lightning's."""

    def __init__(self):
        super().__init__()
        self.rows: dict[str, tuple[str, str]] = {}

    def validation_step(self, batch, batch_idx):
        time.sleep(0.02)  # a batch of ~20 ms: at most 50 batches a second

    def test_step(self, batch, batch_idx):
        time.sleep(0.02)

    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking:
            bar = self.trainer.progress_bar_callback
            self.rows["val"] = _row(bar, bar.val_progress_bar_id)[1:]

    def on_test_epoch_end(self):
        bar = self.trainer.progress_bar_callback
        self.rows["test"] = _row(bar, bar.test_progress_bar_id)[1:]


def test_a_one_batch_stage_shows_its_speed_not_zero():
    """Rich estimates a speed from two updates or more, so Lightning's column shows 0.00it/s for a one-batch validation
    or test stage; dlf's shows the one batch over the stage's time (under 50 batches a second: each takes 20 ms)."""
    module = _ReadingStages()
    one = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(1, 2)), batch_size=1)
    trainer = L.Trainer(max_epochs=1, callbacks=[ProgressBar()], logger=False, enable_checkpointing=False,
                        enable_model_summary=False, accelerator="cpu", num_sanity_val_steps=0)
    trainer.fit(module, one, one)
    trainer.test(module, one, verbose=False)
    for stage in ("val", "test"):
        ours, lightnings = module.rows[stage]
        assert lightnings == "0.00it/s"
        assert ours.endswith("it/s") and 0 < float(ours[:-4]) <= 50, (stage, ours)


class _Timed(_Tiny):
    """The time at the start and at the end of every training batch (the module's hooks run after the callbacks')."""

    def __init__(self):
        super().__init__()
        self.starts, self.ends = [], []

    def on_train_batch_start(self, batch, batch_idx):
        self.starts.append(time.monotonic())

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.ends.append(time.monotonic())


def test_the_training_speed_is_training_batches_a_second():
    """A draw at every batch over 3 epochs of 10: the speed is the 29 batches between the first draw (within the first
    batch) and the last (within the last) over the time between them, validation-free here."""
    bar, module = ProgressBar(max_hz=0), _Timed()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(10, 2)), batch_size=1)
    L.Trainer(max_epochs=3, callbacks=[bar], logger=False, enable_checkpointing=False, enable_model_summary=False,
              accelerator="cpu").fit(module, data)
    assert len(module.ends) == 30
    longest = module.ends[-1] - module.starts[0]  # the first draw is after starts[0], the last before ends[-1]
    shortest = module.starts[-1] - module.ends[0]  # ... and the first before ends[0], the last after starts[-1]
    assert 29 / longest <= bar.train_speed() <= 29 / shortest


def test_a_run_not_bounded_in_epochs_shows_the_epoch_without_a_negative_last():
    rows = _read_rows(ProgressBar(), max_epochs=-1, max_steps=25)  # the third epoch stops at its fifth step
    assert [d for d, _, _ in rows] == ["Epoch 0", "Epoch 1", "Epoch 2"]
    rows = _read_rows(RichProgressBar(), max_epochs=-1, max_steps=25)  # Lightning's (if this fails, it is fixed there)
    assert [d for d, _, _ in rows] == ["Epoch 0/-2", "Epoch 1/-2", "Epoch 2/-2"]
    rows = _read_rows(ProgressBar(), max_epochs=3)
    assert [d for d, _, _ in rows] == ["Epoch 0/2", "Epoch 1/2", "Epoch 2/2"]  # Lightning's own description


class _TinyEval(_Tiny):
    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.w(batch[0]).pow(2).mean())

    def test_step(self, batch, batch_idx):
        self.log("test/loss", self.w(batch[0]).pow(2).mean())


def test_a_bar_that_is_off_does_nothing_in_its_hooks():
    """Under DDP every rank but 0 has its bar off (Lightning's `is_disabled`). Such a bar never counts its stages, so
    Lightning's `total_val_batches_current_dataloader` asserts there; dlf's hooks read it only when the bar is on.
    (On 2862a7e this killed rank 1 of `python train.py model=cnn trainer=ddp_cpu` at its first validation batch.)"""
    bar = ProgressBar()
    bar.disable()  # what Lightning's `is_global_zero` check does on a rank > 0
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(6, 2)), batch_size=2)
    trainer = L.Trainer(max_epochs=2, callbacks=[bar], logger=False, enable_checkpointing=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(_TinyEval(), data, data)
    trainer.test(_TinyEval(), data, verbose=False)
    assert bar.is_disabled and trainer.global_step == 6


def test_the_run_time_left_counts_batches_to_max_epochs_or_max_steps_whichever_ends_first():
    """The training row's "run 0:00:07 left": batches left to the end of the run at the measured speed."""
    from types import SimpleNamespace

    bar = ProgressBar()
    bar._samples.extend([(0.0, 0), (2.0, 100)])  # 50 batches a second
    bar._train_total, bar._in_epoch, bar._trained, bar._first_step = 50, 10, 100, 0
    bar._trainer = SimpleNamespace(max_epochs=10, current_epoch=2, max_steps=-1, global_step=100)
    assert bar.run_time_left() == pytest.approx(((10 - 2) * 50 - 10) / 50)  # epochs bound it: 390 batches
    bar._trainer = SimpleNamespace(max_epochs=10, current_epoch=2, max_steps=300, global_step=200)
    assert bar.run_time_left() == pytest.approx((300 - 200) * (100 / 200) / 50)  # 2 steps a batch (the GAN): 50
    bar._trainer = SimpleNamespace(max_epochs=-1, current_epoch=2, max_steps=-1, global_step=200)
    assert bar.run_time_left() is None  # nothing bounds the run
