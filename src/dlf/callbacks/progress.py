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

Two things Lightning's bar shows that this one shows differently. Its speed column reads Rich's estimate for the
training task, which Lightning resets at every epoch and which needs two updates of it within the epoch: with at most
`max_hz` draws a second, an epoch shorter than 1/max_hz (XOR: 50 steps in ~50 ms) had one, and the bar read
"0.00it/s" all run. RunSpeedColumn shows training batches a second over the draws of the last 30 s (Rich's own
estimate period), across epochs. And its "Epoch n/last" read "Epoch 3/-2" in a run that is not bounded in epochs
(trainer.max_epochs=-1, e.g. experiment=rnn_adding, sized by max_steps): this one says "Epoch 3".

Two things it adds. The training row says how long the whole run has left ("run 0:03:12 left", RunTimeLeftColumn):
the batches left to `max_epochs` or `max_steps`, whichever ends the run first, at the training speed above (which
counts validation time too). Off a terminal (a log file, a pipe, a notebook's captured output) Rich draws the bar once,
when its stage ends, at the console's width, which is 80 columns there: the metrics wrapped onto a second and third
line. Off a terminal the bar gets a console as wide as its line needs (`WIDTH_OFF_TERMINAL`) while it is drawn, so
each stage is one line; the console is put back when the bar stops.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import timedelta

from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import CustomTimeColumn, ProcessingSpeedColumn
from rich.progress import ProgressColumn
from rich.text import Text

SPEED_WINDOW_S = 30.0  # the training speed is measured over the draws of the last 30 s (Rich's speed_estimate_period)
WIDTH_OFF_TERMINAL = 1000  # columns of the bar's console off a terminal: a line is as long as its text, never wrapped


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
        self._trained = 0  # training batches of this fit so far
        self._samples: deque[tuple[float, int]] = deque()  # (time, self._trained) at each draw, the last SPEED_WINDOW_S
        self._in_epoch = 0  # training batches of this epoch so far
        self._first_step = 0  # trainer.global_step when this fit started (a resumed run starts past 0)
        self._console_kwargs_given: dict | None = None  # the console kwargs before widening (None: not widened)

    def configure_columns(self, trainer) -> list:
        """Lightning's columns, its speed column replaced by RunSpeedColumn (the training speed across epochs), the
        run's time left after its time column."""
        columns = []
        for c in super().configure_columns(trainer):
            columns.append(RunSpeedColumn(self, c.style) if isinstance(c, ProcessingSpeedColumn) else c)
            if isinstance(c, CustomTimeColumn):
                columns.append(RunTimeLeftColumn(self, c.style))
        return columns

    def run_time_left(self) -> float | None:
        """Seconds until the run ends (max_epochs or max_steps, the first reached) at the training speed; None before
        the speed is known or when nothing bounds the run."""
        speed, t = self.train_speed(), self.trainer
        if not speed:
            return None
        left = []
        per_epoch = self._train_total
        if t.max_epochs is not None and t.max_epochs >= 0 and isinstance(per_epoch, int):
            left.append((t.max_epochs - t.current_epoch) * per_epoch - self._in_epoch)
        if t.max_steps is not None and t.max_steps > 0 and t.global_step > self._first_step:
            per_step = self._trained / (t.global_step - self._first_step)  # the GAN: 1/2 batch a step
            left.append((t.max_steps - t.global_step) * per_step)
        return max(0.0, min(left)) / speed if left else None

    def train_speed(self) -> float | None:
        """Training batches a second between the oldest and the newest draw of the last SPEED_WINDOW_S seconds
        (validation between epochs included: how fast the run goes); None before two draws."""
        if len(self._samples) < 2:
            return None
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None

    def _get_train_description(self, current_epoch: int) -> str:
        """Lightning's "Epoch n/last", without the "/-2" it shows when the run is not bounded in epochs."""
        max_epochs = self.trainer.max_epochs
        if max_epochs is None or max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        description = f"Epoch {current_epoch}"
        return f"{description:{len(self.validation_description)}}"  # padded as Lightning pads it (no flicker)

    def _due(self, stage: str, batch_idx: int, total) -> bool:
        now = time.monotonic()
        last = batch_idx + 1 >= total if isinstance(total, (int, float)) else False
        if last or now - self._drawn_at.get(stage, float("-inf")) >= self.min_interval:
            self._drawn_at[stage] = now
            return True
        return False

    def _init_progress(self, trainer) -> None:
        from rich import get_console

        if self.is_enabled and (self.progress is None or self._progress_stopped) and self._console_kwargs_given is None:
            console = get_console()
            if not console.is_terminal and not console.is_jupyter and "width" not in self._console_kwargs:
                self._console_kwargs_given = self._console_kwargs
                self._console_kwargs = {**self._console_kwargs, "width": WIDTH_OFF_TERMINAL}
        super()._init_progress(trainer)
        stop_refresh_thread(self.progress)

    def _stop_progress(self) -> None:
        super()._stop_progress()
        if self._console_kwargs_given is not None:  # the console as it was before the bar widened it
            from rich import reconfigure

            self._console_kwargs = self._console_kwargs_given
            self._console_kwargs_given = None
            reconfigure(**self._console_kwargs)

    def refresh(self, hard: bool = False) -> None:
        """Draw now, on this thread (Lightning's `hard` refresh), rather than ask the bar's thread to draw."""
        super().refresh(hard=True)

    def on_train_start(self, trainer, pl_module):
        super().on_train_start(trainer, pl_module)
        self._trained = 0
        self._first_step = trainer.global_step
        self._samples.clear()

    # A bar that is off (every rank but 0 under DDP; Lightning's `is_disabled`) does nothing in the hooks below:
    # Lightning's stage counters it would read are not set on such a rank (an assertion there killed rank 1).
    def on_train_epoch_start(self, trainer, pl_module):
        super().on_train_epoch_start(trainer, pl_module)
        if not self.is_disabled:
            self._train_total = self.total_train_batches
            self._in_epoch = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.is_disabled:
            return
        self._trained += 1
        self._in_epoch += 1
        if self._due("train", batch_idx, self._train_total):
            now, samples = self._drawn_at["train"], self._samples
            samples.append((now, self._trained))
            while len(samples) > 2 and now - samples[1][0] >= SPEED_WINDOW_S:
                samples.popleft()
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not self.is_disabled and self._due("val", batch_idx, self.total_val_batches_current_dataloader):
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not self.is_disabled and self._due("test", batch_idx, self.total_test_batches_current_dataloader):
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


class RunSpeedColumn(ProcessingSpeedColumn):
    """Lightning's "<n>it/s" column; for the training task, the bar's speed across epochs (ProgressBar.train_speed).
    A finished stage that Rich has no estimate for (one batch: Rich needs two updates; Lightning shows 0.00it/s) shows
    its batches over the time it took, and a stage with no estimate yet shows ?it/s, as tqdm does."""

    def __init__(self, bar: ProgressBar, style):
        super().__init__(style)
        self.bar = bar

    def render(self, task) -> Text:
        speed = self.bar.train_speed() if task.id == self.bar.train_progress_bar_id else None
        if speed is None:
            speed = task.speed
        if speed is None and task.finished_time:  # Rich sets it when completed reaches total: the stage's own time
            speed = task.completed / task.finished_time
        return Text("?it/s" if speed is None else f"{speed:>.2f}it/s", style=self.style)


class RunTimeLeftColumn(ProgressColumn):
    """The whole run's time left, on the training row ("run 0:03:12 left", ProgressBar.run_time_left)."""

    def __init__(self, bar: ProgressBar, style):
        super().__init__()
        self.bar, self.style = bar, style

    def render(self, task) -> Text:
        if task.id != self.bar.train_progress_bar_id:
            return Text("")
        left = self.bar.run_time_left()
        return Text("" if left is None else f"run {timedelta(seconds=int(left))} left", style=self.style)
