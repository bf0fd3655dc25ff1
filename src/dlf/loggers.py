"""dlf's TensorBoard logger: Lightning's `TensorBoardLogger`, writing its events on the training thread.

Lightning writes the logged metrics every `trainer.log_every_n_steps` steps and at every epoch end, then calls
`logger.save()`. Stock, that costs a small net a third of a step (XOR, MNIST-1D's MLP: ~0.3 ms a write on CPU):

- TensorBoard's `EventFileWriter` hands every event to a writer thread through a queue, and `save()` (a flush) makes
  the training thread wait until that thread has written them all. On two cores, each hand-over between the threads
  (a wake-up on the other core, the GIL passed back and forth) costs more than the write itself, and a write that is
  not waited for slows the next step instead. `write_on_this_thread` stops the writer thread once and writes each
  event where it is logged: the same records, in the same order, to the same file. TensorBoard's local-file writer
  keeps no buffer (every record is appended to the file at once), so a killed run keeps every event written before
  the kill, and a full disk fails at the write that meets it, on the training thread (dlf.faults says so in one line).
- `save()` also stats the run dir and `hparams.yaml` every time; here it does all of Lightning's save at most every
  `flush_every_s` seconds (default 1), at every checkpoint (`RunGuard` calls `flush_events`) and at the end (Lightning's
  `finalize`). For a remote log dir (fsspec, no append) TensorBoard's flush rewrites the whole file, so fewer flushes
  matter there too.

Two departures from Lightning's logger, for the dashboards (TensorBoard's Scalars and HPARAMS):

- One event file per run. Lightning's `finalize` closes the writer at the end of fit, and the test stage's first write
  opens a second file; here `finalize` flushes and the run closes the logger once, at its end (`close_loggers`).
- Lightning's `epoch` (added to every logged dict) is not written: an `epoch` staircase is the first chart Scalars
  opens on, and TensorBoard's own x-axis choices (step, relative, wall) already show progress. The scalar tags logged
  are kept (`scalar_tags`) for the custom-scalars layout (dlf.callbacks.layout).

TensorBoard's internals are read in one place, `write_on_this_thread`, and torch's `SummaryWriter._get_file_writer`
(where it opens an event file) in `events_on_this_thread`; tests/test_loggers.py fails first if they change.
"""

from __future__ import annotations

import time

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger


class _OnThisThread:
    """TensorBoard's `_AsyncWriter` interface (write, flush, close) with no queue and no thread: each record is
    written (CRC and append, tensorboard's RecordWriter) by the caller."""

    def __init__(self, record_writer):
        self._writer = record_writer
        self._closed = False

    def write(self, data: bytes) -> None:
        if self._closed:
            raise OSError("Writer is closed")  # as TensorBoard's
        self._writer.write(data)

    def flush(self) -> None:
        if self._closed:
            raise OSError("Writer is closed")
        self._writer.flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.flush()
            self._writer.close()


def write_on_this_thread(event_writer) -> bool:
    """Make a TensorBoard `EventFileWriter` write on the calling thread: what is queued is written (an error of the
    writer thread surfaces here), the thread ends, the file stays open. False (nothing changed) if the writer does
    not have the parts this expects (another TensorBoard): it keeps its thread."""
    queued = getattr(event_writer, "_async_writer", None)
    if isinstance(queued, _OnThisThread):
        return True
    if queued is None or not all(hasattr(queued, a) for a in ("_worker", "_writer", "flush")) \
            or not hasattr(queued._worker, "stop"):
        return False
    queued.flush()
    queued._worker.stop()  # the thread's loop ends at its shutdown signal; the file is not closed
    event_writer._async_writer = _OnThisThread(queued._writer)
    return True


def events_on_this_thread(summary_writer) -> None:
    """Every event file of a torch `SummaryWriter` written on the calling thread: the one it has open now, and each
    one it opens later (at the first write after `close()`: Lightning closes the writer at the end of fit and the
    test stage writes again). torch opens them in `SummaryWriter._get_file_writer`, which each write calls; only
    writes call it, so a flush or close of a closed writer still opens nothing."""
    opened = summary_writer._get_file_writer

    def get_file_writer():
        file_writer = opened()
        write_on_this_thread(file_writer.event_writer)
        return file_writer

    summary_writer._get_file_writer = get_file_writer
    get_file_writer()


class TensorBoardLogger(LightningTensorBoardLogger):
    """lightning.pytorch.loggers.TensorBoardLogger writing on the training thread; `save()` at most every
    `flush_every_s` seconds (the module docstring says why)."""

    def __init__(self, *args, flush_every_s: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.flush_every_s = float(flush_every_s)
        self._saved_at: float | None = None  # None: never (the first save writes hparams.yaml, as Lightning's does)
        self._moved = None  # the SummaryWriter whose event files are written on this thread
        self.scalar_tags: set[str] = set()  # every scalar tag logged through log_metrics

    @property
    def experiment(self):
        writer = super().experiment
        # another rank gets Lightning's DummyExperiment, which answers every attribute but has no such method
        if writer is not self._moved and getattr(type(writer), "_get_file_writer", None) is not None:
            events_on_this_thread(writer)
            self._moved = writer
        return writer

    @rank_zero_only
    def log_metrics(self, metrics, step=None) -> None:
        if "epoch" in metrics:  # Lightning's, added to every dict it logs (the module docstring says why it goes)
            metrics = {k: v for k, v in metrics.items() if k != "epoch"}
        self.scalar_tags.update(metrics)
        super().log_metrics(metrics, step)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Lightning's finalize at the end of fit and of test, less its close: the test stage writes on into the same
        event file. `close_loggers` closes it when the run ends."""
        if self._experiment is not None:
            self.flush()

    @rank_zero_only
    def close(self) -> None:
        """Flush and close the event file (Lightning's finalize); a later write would open a new one."""
        LightningTensorBoardLogger.finalize(self, "success")

    @rank_zero_only
    def save(self) -> None:
        if self._saved_at is None or time.monotonic() - self._saved_at >= self.flush_every_s:
            self.flush()

    @rank_zero_only
    def flush(self) -> None:
        """Lightning's save now: the event file flushed, hparams.yaml written if it is missing."""
        super().save()
        self._saved_at = time.monotonic()


def close_loggers(trainer) -> None:
    """Close every dlf TensorBoard logger of `trainer` at the end of a run (its one event file)."""
    for lg in trainer.loggers:
        if isinstance(lg, TensorBoardLogger):
            lg.close()


def flush_events(trainer) -> None:
    """Flush every dlf TensorBoard logger of `trainer` (RunGuard: before a checkpoint is written)."""
    for lg in trainer.loggers:
        if isinstance(lg, TensorBoardLogger):
            lg.flush()
