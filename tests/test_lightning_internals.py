"""dlf.lightning_internals against a small real Trainer: each function read at the moment dlf reads it gives the value
dlf relies on. When a Lightning upgrade renames or changes one of the private attributes, this file fails first, and
the error names the attribute."""

from __future__ import annotations

import contextlib
import csv
import ctypes
import os
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger

from dlf import lightning_internals as internals
from dlf.data.base import DataFacts, InMemoryDataModule
from dlf.errors import DlfError
from dlf.systems.base import System

N, BATCH, LIMIT, EPOCHS, EVERY = 20, 4, 4, 2, 3  # 5 batches an epoch, cut to 4 (limit_train_batches)


class Tiny(InMemoryDataModule):
    """y = x1 - x2 on 20 points; remembers the training loader it served."""

    def build(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(N, 2, generator=g)
        y = (x[:, :1] - x[:, 1:])
        self.train = self.val = self.test = (x, y)
        self.facts = DataFacts(name="tiny", kind="vector", target="regression", input_shape=(2,), in_features=2)

    def train_dataloader(self):
        self.served = super().train_dataloader()
        return self.served


class Probe(System):
    """A dlf System whose step records what dlf reads from Lightning, where dlf reads it (System.log, log_train_step)."""

    def __init__(self, facts):
        super().__init__(facts)
        self.net = torch.nn.Linear(2, 1)
        self.hooks: dict[str, set] = {}
        self.trainers: list = []
        self.writes: list[tuple[bool, float]] = []  # (logs_this_step, loss) per training step

    def step(self, batch, batch_idx, stage):
        x, y = batch
        loss = F.mse_loss(self.net(x), y)
        self.hooks.setdefault(stage, set()).add(internals.current_hook(self))
        self.trainers.append(internals.attached_trainer(self))
        if stage == "train":
            self.writes.append((internals.logs_this_step(self.trainer), float(loss.detach())))
            L.LightningModule.log(self, "train/every", loss, on_step=True, on_epoch=False)  # Lightning's own self.log
            # dlf's System.log: passed on only on the steps Lightning writes
            self.log_train_step("train/skipped", loss, prog_bar=True)
        else:
            self.log(f"{stage}/loss", loss)
        return loss


class Positions(L.Callback):
    """At each training batch end (where LastCheckpoint saves, so where a loader's state_dict is read)."""

    def __init__(self):
        self.seen: list[tuple] = []
        self.loaders: list = []

    def on_train_start(self, trainer, pl_module):
        self.loaders = internals.train_loaders(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        dm = trainer.datamodule
        self.seen.append((trainer.current_epoch, batch_idx, internals.batches_done(trainer),
                          internals.fit_position(trainer), dm.fit_position(), dm.served.state_dict()))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    torch.manual_seed(0)
    dm = Tiny(batch_size=BATCH)
    probe = Probe(dm.prepare())
    before = internals.attached_trainer(probe)
    positions = Positions()
    logger = CSVLogger(tmp_path_factory.mktemp("internals"), name="", version="")
    trainer = L.Trainer(max_epochs=EPOCHS, limit_train_batches=LIMIT, limit_val_batches=1, log_every_n_steps=EVERY,
                        logger=logger, callbacks=[positions], enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", devices=1)
    trainer.fit(probe, datamodule=dm)
    trainer.test(probe, datamodule=dm, verbose=False)
    with open(logger.log_dir + "/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return dict(dm=dm, probe=probe, before=before, positions=positions, trainer=trainer, rows=rows)


def test_attached_trainer_is_none_before_fit_and_the_trainer_inside_it(fitted):
    assert fitted["before"] is None
    assert fitted["probe"].trainers and all(t is fitted["trainer"] for t in fitted["probe"].trainers)


def test_current_hook_names_the_running_step(fitted):
    assert fitted["probe"].hooks == {"train": {"training_step"}, "val": {"validation_step"}, "test": {"test_step"}}


def test_logs_this_step_is_true_exactly_on_the_steps_lightning_writes(fitted):
    writes, rows = fitted["probe"].writes, fitted["rows"]
    assert len(writes) == EPOCHS * LIMIT
    expected = [k for k, (w, _) in enumerate(writes) if w]
    assert expected == [k for k in range(len(writes)) if (k + 1) % EVERY == 0]  # every log_every_n_steps steps
    every = [float(r["train/every"]) for r in rows if r.get("train/every")]
    assert every == pytest.approx([writes[k][1] for k in expected], rel=1e-6)  # the values Lightning kept
    skipped = [float(r["train/skipped"]) for r in rows if r.get("train/skipped")]
    assert skipped == every  # log_train_step loses nothing by skipping the other steps


def test_batches_done_and_fit_position_at_each_batch_end(fitted):
    seen = fitted["positions"].seen
    assert len(seen) == EPOCHS * LIMIT
    for epoch, b, done, pos, dm_pos, loader_state in seen:
        assert done == b + 1  # the batch whose end this is counts as trained
        expect = (epoch + 1, 0) if b + 1 == LIMIT else (epoch, b + 1)  # limit_train_batches ends the epoch early
        assert pos == dm_pos == expect
        assert loader_state == {"epoch": expect[0], "batch": expect[1]}  # what a checkpoint saved here records
    assert internals.fit_position(None) is None


def test_batches_trained_counts_the_whole_fit(fitted):
    assert internals.batches_trained(fitted["trainer"]) == EPOCHS * LIMIT


def test_train_loaders_are_the_ones_the_data_module_served(fitted):
    loaders = fitted["positions"].loaders
    assert len(loaders) == 1 and loaders[0] is fitted["dm"].served


@pytest.mark.parametrize("read, attribute", [
    (lambda: internals.logs_this_step(object()), "_logger_connector.should_update_logs"),
    (lambda: internals.batches_done(object()), "fit_loop.epoch_loop.batch_progress.current.processed"),
    (lambda: internals.attached_trainer(object()), "_trainer"),
    (lambda: internals.current_hook(object()), "_current_fx_name"),
])
def test_a_renamed_attribute_is_a_one_line_error_that_names_it(read, attribute):
    with pytest.raises(DlfError, match=f"Lightning's object.{attribute}, which lightning"):
        read()


class Counts(L.Callback):
    """Counts the batch hooks it implements; inherits the others as Lightning's empty ones."""

    def __init__(self):
        self.calls = {"on_train_batch_end": 0, "on_before_backward": 0}

    def on_train_batch_end(self, *args):
        self.calls["on_train_batch_end"] += 1

    def on_before_backward(self, *args):
        self.calls["on_before_backward"] += 1


def test_lightning_skips_a_batch_hook_set_to_none_and_calls_the_others(tmp_path):
    torch.manual_seed(0)
    dm = Tiny(batch_size=BATCH)
    probe, counts, empty = Probe(dm.prepare()), Counts(), L.Callback()
    internals.skip_empty_batch_hooks(probe, [counts, empty])
    assert all(getattr(empty, h) is None for h in internals.BATCH_HOOKS)  # inherited empty: skipped
    assert all(getattr(probe, h) is None for h in internals.TRAIN_BATCH_HOOKS)
    assert counts.on_before_optimizer_step is None and counts.on_train_batch_end is not None  # overridden: kept
    trainer = L.Trainer(max_epochs=1, limit_train_batches=LIMIT, limit_val_batches=1, callbacks=[counts, empty],
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", devices=1, default_root_dir=tmp_path)
    trainer.fit(probe, datamodule=dm)  # a Lightning that called every hook unchecked would fail here: None(...)
    trainer.test(probe, datamodule=dm, verbose=False)
    assert counts.calls == {"on_train_batch_end": LIMIT, "on_before_backward": LIMIT}
    assert probe.global_step == LIMIT


class MovesOwnBatches(Tiny):
    """A data module that implements transfer_batch_to_device (so Lightning must call the data module's)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.moved = 0

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        self.moved += 1
        return super().transfer_batch_to_device(batch, device, dataloader_idx)


class SeesEveryBatch(Probe):
    """A module that implements on_after_batch_transfer (no data module does here, so Lightning calls this one)."""

    def __init__(self, facts):
        super().__init__(facts)
        self.seen = 0

    def on_after_batch_transfer(self, batch, dataloader_idx):
        self.seen += 1
        return batch


@pytest.mark.filterwarnings("ignore:You have overridden `on_after_batch_transfer`")  # Lightning, on SeesEveryBatch
@pytest.mark.parametrize("once", [False, True])
def test_data_hooks_chosen_once_a_stage_call_the_same_hooks_at_every_batch(tmp_path, monkeypatch, once):
    """choose_data_hooks_once: the data module's and the module's own transfer hooks are still the ones called, at
    every training, validation and test batch, and Lightning asks which object implements a hook a few times a stage
    (three hook names, two objects), not six times a batch as it does without it."""
    from lightning.pytorch.trainer.connectors import data_connector

    asked = []
    lightning_is_overridden = data_connector.is_overridden
    monkeypatch.setattr(data_connector, "is_overridden",
                        lambda name, obj, *a, **k: asked.append(name) or lightning_is_overridden(name, obj, *a, **k))
    torch.manual_seed(0)
    dm = MovesOwnBatches(batch_size=BATCH, eval_batch_size=BATCH)  # 5 batches in each split
    module = SeesEveryBatch(dm.prepare())
    trainer = L.Trainer(max_epochs=EPOCHS, limit_train_batches=LIMIT, limit_val_batches=2, limit_test_batches=3,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu", devices=1,
                        default_root_dir=tmp_path)
    if once:
        internals.choose_data_hooks_once(trainer)
        internals.choose_data_hooks_once(trainer)  # idempotent
    trainer.fit(module, datamodule=dm)
    trainer.test(module, datamodule=dm, verbose=False)
    batches = EPOCHS * (LIMIT + 2) + 3
    assert dm.moved == batches and module.seen == batches
    transfer = [n for n in asked if n in ("on_before_batch_transfer", "transfer_batch_to_device",
                                          "on_after_batch_transfer")]
    if once:
        assert 0 < len(transfer) <= 2 * 3 * 2  # two stages (fit, test): each hook name once, of one or both objects
    else:
        assert len(transfer) >= 3 * batches  # Lightning's own: at every batch (what the test above relies on)


@pytest.mark.parametrize("trigger", [None, "every_n_train_steps", "train_time_interval"])
def test_a_checkpoint_without_step_triggers_writes_the_same_without_its_batch_hook(tmp_path, trigger):
    """A ModelCheckpoint with no step or time trigger loses its on_train_batch_end (Lightning's returns at once there)
    and writes the same checkpoints, at the same steps, as with it; one with a trigger keeps the hook."""
    import datetime

    from lightning.pytorch.callbacks import ModelCheckpoint

    kw = {None: {}, "every_n_train_steps": {"every_n_train_steps": 2},
          "train_time_interval": {"train_time_interval": datetime.timedelta(0)}}[trigger]
    written = {}
    for skip in (False, True):
        torch.manual_seed(0)
        dm = Tiny(batch_size=BATCH)
        probe = Probe(dm.prepare())
        steps: list[int] = []

        class Record(ModelCheckpoint):
            saved_at = steps  # this run's list, bound when the class is made

            def _save_checkpoint(self, trainer, filepath):
                self.saved_at.append(trainer.global_step)
                super()._save_checkpoint(trainer, filepath)

        ckpt = Record(dirpath=tmp_path / f"{trigger}_{skip}", filename="{step}", save_top_k=-1, **kw)
        if skip:
            internals.skip_empty_batch_hooks(probe, [ckpt])
            assert (ckpt.on_train_batch_end is None) == (trigger is None)
        trainer = L.Trainer(max_epochs=2, limit_train_batches=LIMIT, limit_val_batches=1, callbacks=[ckpt],
                            logger=False, enable_progress_bar=False, enable_model_summary=False,
                            accelerator="cpu", devices=1, default_root_dir=tmp_path)
        trainer.fit(probe, datamodule=dm)
        written[skip] = (steps, sorted(p.name for p in Path(ckpt.dirpath).iterdir()))
    assert written[True] == written[False]
    assert len(written[True][0]) >= (2 if trigger is None else 2 * LIMIT // 2)  # epoch ends; + every 2nd step


def _result_metric(on_step: bool, on_epoch: bool):
    """A Lightning `_ResultMetric` as `self.log(..., on_step=, on_epoch=)` makes it (through `_ResultCollection.log`),
    after two logged values and an epoch compute: every tensor it can hold is set."""
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultCollection

    results = _ResultCollection(training=True)
    for value in (2.0, 3.0):
        results.log("training_step", "train/loss", torch.tensor(value), on_step=on_step, on_epoch=on_epoch,
                    batch_size=4)
    m = results["training_step.train/loss"]
    if on_epoch:
        m.compute()
    return m


@pytest.mark.parametrize("on_step,on_epoch", [(True, False), (False, True), (True, True)])
def test_the_device_short_cut_reads_every_tensor_lightnings_move_would_move(on_step, on_epoch):
    """skip_same_device_moves returns early only when result_tensors are on the device: they must be every tensor
    Lightning's `_ResultMetric.to` reaches (apply_to_collection over its __dict__). A Lightning that keeps a tensor
    somewhere else fails here, before the short cut could leave it on the wrong device."""
    from lightning_utilities.core.apply_func import apply_to_collection

    m = _result_metric(on_step, on_epoch)
    reached: list[torch.Tensor] = []
    apply_to_collection(dict(m.__dict__), torch.Tensor, lambda t: reached.append(t) or t)
    assert reached and {id(t) for t in internals.result_tensors(m)} == {id(t) for t in reached}


def test_a_logged_value_moves_only_when_it_must():
    """Patched (once, idempotently): a move to the device its tensors are on returns the metric untouched (Lightning's
    would rebuild its __dict__: a new metadata object); a move to another device, with keywords, or of a metric that
    wraps a torchmetrics Metric is Lightning's."""
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric

    internals.skip_same_device_moves()
    internals.skip_same_device_moves()
    assert _ResultMetric.to.dlf_short_cut and not getattr(_ResultMetric.to.lightning_to, "dlf_short_cut", False)
    m = _result_metric(True, True)
    meta, value = m.meta, m.value
    assert m.to(torch.device("cpu")) is m and m.meta is meta and m.value is value  # nothing rebuilt
    m.to(torch.device("meta"))  # another device: everything moves (Lightning's path)
    assert m.meta is not meta and all(t.device.type == "meta" for t in internals.result_tensors(m))
    assert not internals.on_device(m, torch.device("cpu"))
    m = _result_metric(True, True)
    meta = m.meta
    m.to(device=torch.device("cpu"))  # keywords (as _ResultCollection.cpu() calls it): Lightning's path
    assert m.meta is not meta and internals.on_device(m, torch.device("cpu"))
    wrapped = _ResultMetric(m.meta, False)
    assert internals.result_tensors(wrapped) is None and not internals.on_device(wrapped, torch.device("cpu"))


def test_logged_metrics_are_the_same_with_the_device_short_cut(tmp_path):
    """The same seeded fit, with Lightning's `_ResultMetric.to` and with dlf's short cut: the same metrics.csv."""
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric

    internals.skip_same_device_moves()
    patched = _ResultMetric.to
    tables = {}
    try:
        for short_cut in (False, True):
            _ResultMetric.to = patched if short_cut else patched.lightning_to
            torch.manual_seed(0)
            dm = Tiny(batch_size=BATCH)
            logger = CSVLogger(tmp_path / str(short_cut), name="", version="")
            trainer = L.Trainer(max_epochs=EPOCHS, limit_train_batches=LIMIT, limit_val_batches=2,
                                log_every_n_steps=1, logger=logger, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)
            trainer.fit(Probe(dm.prepare()), datamodule=dm)
            tables[short_cut] = (Path(logger.log_dir) / "metrics.csv").read_text()
    finally:
        _ResultMetric.to = patched
    assert tables[True] == tables[False] and tables[True].count("\n") > 2 * LIMIT


class Seen(L.Callback):
    """The trainer's metric dicts as a callback sees them before each batch and at each epoch end, and whether the
    value System.log dropped was reset in Lightning's result collection at each batch end."""

    def __init__(self):
        self.dicts: list = []
        self.reset_at: list[bool] = []

    def _record(self, trainer):
        self.dicts.append([{k: float(v) for k, v in d.items()} for d in
                           (trainer.callback_metrics, trainer.progress_bar_metrics, trainer.logged_metrics)])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._record(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        entry = trainer.fit_loop.epoch_loop._results.get("training_step.train/skipped")
        self.reset_at.append(None if entry is None else entry.has_reset)  # None: nothing logged under it yet

    def on_train_epoch_end(self, trainer, pl_module):
        self._record(trainer)


def test_a_dropped_steps_value_is_forgotten_and_every_metric_dict_stays_the_same(tmp_path, monkeypatch):
    """System.log resets the value it last wrote on the steps it drops (forget_written_value): the trainer's callback,
    progress bar and logged metrics before every batch and at every epoch end, and metrics.csv, are those of the same
    fit that keeps it (Lightning re-copies it after every batch); the entry is reset exactly on the dropped steps."""
    runs = {}
    for forget in (False, True):
        if not forget:
            monkeypatch.setattr(internals, "forget_written_value", lambda *a: None)
        else:
            monkeypatch.undo()
        torch.manual_seed(0)
        dm = Tiny(batch_size=BATCH)
        seen, logger = Seen(), CSVLogger(tmp_path / str(forget), name="", version="")
        probe = Probe(dm.prepare())
        trainer = L.Trainer(max_epochs=EPOCHS, limit_train_batches=LIMIT, limit_val_batches=1, log_every_n_steps=EVERY,
                            logger=logger, callbacks=[seen], enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, accelerator="cpu", devices=1)
        trainer.fit(probe, datamodule=dm)
        runs[forget] = (seen, (Path(logger.log_dir) / "metrics.csv").read_text(), probe.writes)
    (kept, kept_csv, writes), (forgot, forgot_csv, _) = runs[False], runs[True]
    assert forgot.dicts == kept.dicts and forgot_csv == kept_csv
    assert any("train/skipped" in d[0] and "train/skipped" in d[1] for d in forgot.dicts)  # the last written value
    dropped = [not written for written, _ in writes]
    assert any(dropped) and not all(dropped)
    assert all((r is not False) if d else (r is False) for r, d in zip(forgot.reset_at, dropped, strict=True))
    assert any(r is False for r, d in zip(kept.reset_at, dropped) if d)  # Lightning alone keeps it between writes


NVML = "libnvidia-ml.so.1"
no_nvml = pytest.mark.skipif(not torch.backends.cuda.is_built() or internals.nvml_loads(),
                             reason="NVIDIA's libnvidia-ml loads here (or torch has no CUDA): torch's NVML check answers")


def test_lightning_still_sets_the_nvml_based_cuda_check():
    """`import lightning` sets PYTORCH_NVML_BASED_CUDA_CHECK=1. If this fails, Lightning no longer does, and
    internals.cuda_check_without_failing_nvml (and bench.py's plain side dropping it) can go."""
    assert os.environ.get(internals.NVML_CHECK) == "1"


@pytest.fixture
def nvml_loads_tried(monkeypatch) -> list:
    """Every ctypes.CDLL("libnvidia-ml.so.1") from now on, as a list of names (torch imports CDLL at each call)."""
    tried, real = [], ctypes.CDLL

    def spy(name, *args, **kwargs):
        if name == NVML:
            tried.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", spy)
    return tried


def _adam_steps(n: int) -> torch.Tensor:
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    for _ in range(n):
        opt.zero_grad()
        net(torch.ones(4, 2)).pow(2).mean().backward()
        opt.step()
    return net.weight.detach().clone()


@no_nvml
def test_without_nvml_each_adam_step_tries_it_under_lightnings_setting_and_not_in_the_context(nvml_loads_tried):
    answer = torch.cuda.is_available()
    before = _adam_steps(5)
    assert len(nvml_loads_tried) >= 5  # torch, under Lightning's setting: a failed load at every step (what dlf removes)
    nvml_loads_tried.clear()
    with internals.cuda_check_without_failing_nvml():
        assert internals.NVML_CHECK not in os.environ
        assert torch.cuda.is_available() == answer  # the runtime's answer, which torch falls back to after NVML fails
        after = _adam_steps(5)
    assert len(nvml_loads_tried) == 1  # the context's own check, once
    assert torch.equal(before, after)
    assert os.environ[internals.NVML_CHECK] == "1"  # restored


def test_the_nvml_context_changes_nothing_where_the_check_is_not_lightnings(monkeypatch):
    monkeypatch.setenv(internals.NVML_CHECK, "0")  # a user's own choice (or a GPU machine, where NVML loads): kept
    with internals.cuda_check_without_failing_nvml():
        assert os.environ[internals.NVML_CHECK] == "0"
    assert os.environ[internals.NVML_CHECK] == "0"


@no_nvml
def test_a_run_tries_nvml_only_before_training(make_cfg, tmp_path, monkeypatch, nvml_loads_tried):
    """dlf.run.train.run trains inside the context: no load at any of its optimizer steps (3 training batches), against
    one at every step with the context off."""
    from dlf.run.train import run

    per_step: list[int] = []  # NVML loads made inside each Adam step
    adam_step = torch.optim.Adam.step

    def counting(self, *args, **kwargs):
        before = len(nvml_loads_tried)
        out = adam_step(self, *args, **kwargs)
        per_step.append(len(nvml_loads_tried) - before)
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", counting)
    run(make_cfg(["model=mlp_xor", "test=false"], tmp_path / "on"))
    assert per_step == [0, 0, 0]
    per_step.clear()
    monkeypatch.setattr(internals, "cuda_check_without_failing_nvml", contextlib.nullcontext)
    run(make_cfg(["model=mlp_xor", "test=false"], tmp_path / "off"))
    assert len(per_step) == 3 and all(n >= 1 for n in per_step)
