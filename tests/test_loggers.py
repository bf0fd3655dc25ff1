"""dlf.loggers: TensorBoard events written on the training thread, the same records TensorBoard's writer thread
writes; Lightning's save at most every flush_every_s, and at every checkpoint. The TensorBoard internals that
`write_on_this_thread` reads are checked here first: a TensorBoard that changes them fails
`test_tensorboard_still_has_what_write_on_this_thread_reads`."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader, RawEventFileLoader
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from dlf import loggers
from dlf.loggers import TensorBoardLogger, flush_events, write_on_this_thread


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if type(t).__name__ == "_AsyncWriterThread" and t.is_alive()]


def scalar_event(step: int, value: float) -> event_pb2.Event:
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="train/loss", simple_value=value)])
    return event_pb2.Event(wall_time=1000.0 + step, step=step, summary=summary)


def records(path) -> list[bytes]:
    """The file's records as written, after the first (the file-version event, stamped with the time it was made)."""
    return list(RawEventFileLoader(str(path)).Load())[1:]


def test_tensorboard_still_has_what_write_on_this_thread_reads(tmp_path):
    """EventFileWriter._async_writer (an _AsyncWriter with _worker, a thread with stop(), and _writer, TensorBoard's
    RecordWriter): if a TensorBoard release renames one, write_on_this_thread returns False and this fails."""
    ew = EventFileWriter(str(tmp_path))
    before = set(writer_threads())
    assert before, "TensorBoard's EventFileWriter no longer starts a writer thread: dlf.loggers has nothing to stop"
    assert write_on_this_thread(ew) is True
    assert isinstance(ew._async_writer, loggers._OnThisThread)
    assert not set(writer_threads()) & before  # its thread has ended
    assert write_on_this_thread(ew) is True  # twice: nothing more to do
    ew.close()
    from torch.utils.tensorboard import SummaryWriter  # the logger reopens a closed writer's file through this

    assert callable(getattr(SummaryWriter, "_get_file_writer", None))


def test_the_same_records_in_the_same_file_format_as_the_writer_thread(tmp_path):
    """The same events through TensorBoard's writer thread and through dlf's writer: byte-identical records, read
    back by TensorBoard's own loader, and each on disk as soon as it is added (no flush needed)."""
    events = [scalar_event(s, 1.0 / (s + 1)) for s in range(25)]
    threaded, ours = EventFileWriter(str(tmp_path / "threaded")), EventFileWriter(str(tmp_path / "ours"))
    write_on_this_thread(ours)
    for i, e in enumerate(events):
        threaded.add_event(e)
        ours.add_event(e)
        if i == 9:  # on disk already, before any flush or close
            assert records(ours._file_name) == [x.SerializeToString() for x in events[:10]]
    threaded.close()
    ours.close()
    assert records(ours._file_name) == records(threaded._file_name) == [e.SerializeToString() for e in events]
    with pytest.raises(OSError, match="Writer is closed"):
        ours.add_event(events[0])


def test_the_logger_writes_on_the_training_thread_and_reads_back(tmp_path):
    """dlf's logger: no TensorBoard writer thread while it logs, every scalar readable at once, and after finalize
    (as Lightning ends fit) too; a write after finalize (the test stage) goes on in the same file, also without a
    thread; close() ends it. Lightning's `epoch` is not written."""
    before = set(writer_threads())
    lg = TensorBoardLogger(str(tmp_path), name="", version="")
    for step in range(12):
        lg.log_metrics({"train/loss": 1.0 / (step + 1), "epoch": 0}, step=step)
        lg.save()
    assert not set(writer_threads()) - before
    (f,) = tmp_path.glob("events.out.tfevents.*")
    steps = [e.step for e in EventFileLoader(str(f)).Load() if e.summary.value]
    assert steps == list(range(12))
    lg.finalize("success")
    lg.log_metrics({"test/loss": 0.5}, step=12)
    assert not set(writer_threads()) - before
    lg.finalize("success")
    lg.close()
    (f,) = tmp_path.glob("events.out.tfevents.*")
    tags = [v.tag for e in EventFileLoader(str(f)).Load() for v in e.summary.value]
    assert tags == ["train/loss"] * 12 + ["test/loss"] and lg.scalar_tags == {"train/loss", "test/loss"}


def test_finalize_opens_no_new_event_file(tmp_path):
    """Lightning's finalize (dlf's close) closes the writer and then saves: a save that is due then flushes a closed
    writer, which must not open another (empty) event file. flush_every_s=0: every save is due."""
    lg = TensorBoardLogger(str(tmp_path), name="", version="", flush_every_s=0)
    lg.log_metrics({"train/loss": 1.0}, step=0)
    lg.save()
    lg.finalize("success")
    lg.close()
    lg.close()
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1


def test_save_runs_lightnings_save_at_most_every_flush_every_s(tmp_path, monkeypatch):
    """The first save (hparams.yaml) and then one per flush_every_s; flush() and flush_events at once, every time."""
    calls, now = [], [100.0]
    monkeypatch.setattr(LightningTensorBoardLogger, "save", lambda self: calls.append(now[0]))
    monkeypatch.setattr(loggers.time, "monotonic", lambda: now[0])
    lg = TensorBoardLogger(str(tmp_path), name="", version="", flush_every_s=1.0)
    for _ in range(50):
        lg.save()
    assert calls == [100.0]
    now[0] = 100.9
    lg.save()
    assert calls == [100.0]
    now[0] = 101.0
    lg.save()
    lg.save()
    assert calls == [100.0, 101.0]
    flush_events(SimpleNamespace(loggers=[lg, object()]))  # a checkpoint: now, whatever the time
    assert calls == [100.0, 101.0, 101.0]
    every = TensorBoardLogger(str(tmp_path / "every"), name="", version="", flush_every_s=0)
    for _ in range(3):
        every.save()
    assert len(calls) == 6


def test_every_checkpoint_flushes_the_events_first(tmp_path, monkeypatch):
    """RunGuard.on_save_checkpoint (Lightning calls it while it builds any checkpoint, before a byte is written): the
    events up to the checkpoint's step are flushed, so a run killed after it resumes with none of them missing."""
    import torch

    from dlf.callbacks.resilience import RunGuard

    calls = []
    monkeypatch.setattr(LightningTensorBoardLogger, "save", lambda self: calls.append("save"))
    lg = TensorBoardLogger(str(tmp_path), name="", version="")
    lg.save()  # just flushed: the next saves wait for flush_every_s
    lg.save()
    trainer = SimpleNamespace(loggers=[lg], global_step=7)
    checkpoint: dict = {}
    RunGuard().on_save_checkpoint(trainer, torch.nn.Linear(2, 1), checkpoint)
    assert calls == ["save", "save"] and checkpoint["dlf"]["global_step"] == 7


def test_another_rank_gets_lightnings_dummy_experiment(tmp_path, monkeypatch):
    """On a rank other than 0 Lightning hands out a do-nothing experiment: dlf's logger passes it through untouched
    and writes nothing."""
    from lightning.fabric.loggers.logger import _DummyExperiment
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", 1)
    lg = TensorBoardLogger(str(tmp_path), name="", version="")
    assert isinstance(lg.experiment, _DummyExperiment)
    lg.log_metrics({"train/loss": 1.0}, step=0)
    lg.save()
    flush_events(SimpleNamespace(loggers=[lg]))
    assert not list(tmp_path.iterdir())
