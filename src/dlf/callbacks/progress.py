"""The progress bar: Lightning's Rich bar, redrawn at most `max_hz` times a second, on the training thread.

Lightning's RichProgressBar recomputes its metrics and redraws the whole bar after every batch (its `refresh_rate` is
not consulted on that path). This bar does the same drawing only when at least 1/max_hz seconds have passed since the
last one, and always at an epoch's last batch, so what a person sees is unchanged. Measured on XOR (idle, 1 thread,
`scripts/bench.py xor --dlf-override ...`): dlf 1.60 ms/step with Lightning's bar, 1.56 with this one, 1.40 with no bar
at all; most of the bar's cost is Lightning's own per-step bookkeeping for it, which a callback cannot reach. Nothing
it does touches the training.

Lightning's bar also starts a thread that wakes `refresh_rate` (100) times a second to draw when asked. This bar never
asks (it draws on the training thread), so that thread is stopped as soon as Lightning starts it (`_init_progress`,
the one place Lightning creates the bar; `stop_refresh_thread` reads Rich's `Live._refresh_thread`):
tests/test_progress.py checks that no such thread runs while training, and fails first if Lightning or Rich change.
"""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import RichProgressBar


class ProgressBar(RichProgressBar):
    def __init__(self, max_hz: float = 10.0, **kwargs):
        # Lightning's bar asks a thread of its own to draw; while it builds the bar in Python, training waits for the
        # GIL: on XOR some runs' median step grew by 10-35 % (scripts/bench.py; the same run without a bar: never).
        # This bar draws on the training thread instead (refresh below), at most max_hz times a second, and stops
        # Lightning's thread, which would otherwise wake `refresh_rate` (100) times a second to find nothing to draw.
        super().__init__(**kwargs)
        self.min_interval = 1.0 / max_hz if max_hz > 0 else 0.0
        self._drawn_at: dict[str, float] = {}
        self._train_total = None  # the epoch's training batches, read once an epoch (a chain of Lightning properties)

    def _due(self, stage: str, batch_idx: int, total) -> bool:
        now = time.monotonic()
        last = batch_idx + 1 >= total if isinstance(total, (int, float)) else False
        if last or now - self._drawn_at.get(stage, float("-inf")) >= self.min_interval:
            self._drawn_at[stage] = now
            return True
        return False

    def _init_progress(self, trainer) -> None:
        super()._init_progress(trainer)
        stop_refresh_thread(self.progress)

    def refresh(self, hard: bool = False) -> None:
        """Draw now, on this thread (Lightning's `hard` refresh), rather than ask the bar's thread to draw."""
        super().refresh(hard=True)

    def on_train_epoch_start(self, trainer, pl_module):
        super().on_train_epoch_start(trainer, pl_module)
        self._train_total = self.total_train_batches

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._due("train", batch_idx, self._train_total):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if self._due("val", batch_idx, self.total_val_batches_current_dataloader):
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if self._due("test", batch_idx, self.total_test_batches_current_dataloader):
            super().on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)


def stop_refresh_thread(progress) -> None:
    """Stop the thread a started Rich progress display redraws from (Lightning's `CustomProgress` starts one), and
    mark its `Live` as not auto-refreshing, so that Lightning's and Rich's stop do not look for it. The display is
    drawn only when asked (`refresh`). Waits for the thread's current sleep (at most 1/refresh_rate s) once."""
    live = getattr(progress, "live", None)
    thread = getattr(live, "_refresh_thread", None)
    if thread is None:
        return
    live.auto_refresh = False
    live._refresh_thread = None
    thread.stop()
    thread.join()
