"""What every dlf system shares: the optimizer (and scheduler) from the top-level config groups, the data facts, the
train/val/test hooks around one `step`, per-stage metrics, and logging.

d2l's Classifier pattern: a family writes one `step(batch, batch_idx, stage)` (compute the loss, update and log this
stage's metrics, return the loss); `training_step`, `validation_step` and `test_step` are written once, here. A family
binds its cost (and the metrics it logs) when it is built, so a step calls them without naming them again.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torchmetrics

from dlf.data.base import DataFacts
from dlf.errors import DlfError
from dlf.fast_logging import FastLogging
from dlf.metrics.accuracy import Accuracy
from dlf.metrics.queue import UpdateQueue

STAGES = ("train", "val", "test")


class System(FastLogging):
    """Base LightningModule. `optimizer` and `scheduler` are partials from configs/optimizer and configs/scheduler;
    `facts` are the data module's DataFacts. Subclasses say which data kinds they accept (ACCEPTS) and which nets they
    train (`nets`). FastLogging (dlf.fast_logging) is LightningModule with its per-step logging costs trimmed."""

    ACCEPTS: tuple[str, ...] = ()  # DataFacts.kind values this family can take
    # model.* keys a config holds that the constructor does not take (dlf.run.build leaves them out): a run option
    # (compile: dlf.run.speed) and the model's optimizer settings that the optimizer configs read (lr_table, adam_betas)
    CONFIG_KEYS: tuple[str, ...] = ("compile", "lr_table", "adam_betas")
    monitor: str | None = None  # the run's `monitor` (dlf.run.build sets it): what scheduler=plateau steps on

    def __init__(self, facts: DataFacts, optimizer: Callable | None = None, scheduler: Callable | None = None):
        super().__init__()
        if self.ACCEPTS and facts.kind not in self.ACCEPTS:
            raise DlfError(f"model {type(self).__name__} cannot take data={facts.name} (its samples are "
                           f"'{facts.kind}', this model takes {' or '.join(self.ACCEPTS)}): pick a matching data=...")
        self.facts = facts
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self._epoch_metrics: dict[str, tuple] = {}  # "stage/name" -> (torchmetrics Metric, prog_bar)
        self._queues: dict[int, UpdateQueue] = {}  # id(training metric) -> its batched updates (update_metric)
        # one sample of zeros: Lightning's model summary measures FLOPs and in/out sizes on it (else a column of 0s)
        self.example_input_array = torch.zeros(1, *facts.input_shape,
                                               dtype=torch.int64 if facts.vocab else torch.float32)

    # ---- one step, three stages ------------------------------------------------------------------------------------
    def step(self, batch, batch_idx: int, stage: str) -> torch.Tensor:
        """One batch of `stage` ("train", "val" or "test"): compute the loss, update and log this stage's metrics,
        return the loss (training backpropagates it). Every family implements it."""
        raise NotImplementedError(f"{type(self).__name__} must implement step(batch, batch_idx, stage)")

    def training_step(self, batch, batch_idx):
        return self.step(batch, batch_idx, "train")

    def validation_step(self, batch, batch_idx):
        self.step(batch, batch_idx, "val")

    def test_step(self, batch, batch_idx):
        self.step(batch, batch_idx, "test")

    def add_stage_metrics(self, name: str, make: Callable[[], torchmetrics.Metric],
                          stages: tuple[str, ...] = STAGES) -> dict[str, torchmetrics.Metric]:
        """A fresh metric for each stage, registered as self.<stage>_<name> (submodules follow the model's device;
        torchmetrics states are not persistent, so no state_dict key); returned as {stage: metric} for `step`."""
        metrics = {stage: make() for stage in stages}
        for stage, metric in metrics.items():
            setattr(self, f"{stage}_{name}", metric)
        return metrics

    # ---- logging ---------------------------------------------------------------------------------------------------
    def metric_names(self) -> set[str] | None:
        """The names this system logs (as "stage/name"), so that `monitor=` is checked before training starts.
        None: not declared (no start-up check). Families override it; tests/test_entry.py checks it against a run."""
        return None

    def update_metric(self, stage: str, metric: torchmetrics.Metric, *inputs: torch.Tensor) -> None:
        """metric.update(*inputs) for a batch of `stage`. In training the update is batched (dlf.metrics.queue):
        the detached inputs are queued and the metric updated every 50 steps, and before its epoch-end compute, with
        the same result; validation and test update at once. For counting metrics (accuracy, a max, a confusion)."""
        if stage != "train":
            metric.update(*inputs)
            return
        queue = self._queues.get(id(metric))
        if queue is None:
            queue = self._queues[id(metric)] = UpdateQueue(metric)
        queue.add(*inputs)

    def log_at_epoch_end(self, name: str, metric, prog_bar: bool = False) -> None:
        """Log a torchmetrics metric (updated by the caller each step) once, at the end of the epoch of its stage.

        Passing the Metric object to self.log every step makes Lightning walk the metric's attributes on every call
        (about 1.5 ms a step on CPU, more than a small net's whole step); computing once per epoch costs nothing.
        """
        self._epoch_metrics[name] = (metric, prog_bar)

    def log_train_step(self, name: str, value, **kwargs) -> None:
        """self.log of a per-step training value: written every trainer.log_every_n_steps steps (System.log drops the
        calls in between). The loss the step returns (checked for divergence, drawn by CostCurve) is unaffected."""
        self.log(name, value, on_step=True, on_epoch=False, **kwargs)

    def log_loss_and_metric(self, stage: str, loss, name: str, metric) -> None:
        """The usual pair: the loss (every written step in training, per epoch otherwise) and a torchmetrics metric
        (per epoch, shown in the progress bar outside training)."""
        if stage == "train":
            self.log_train_step("train/loss", loss, prog_bar=True)
        else:
            self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log_at_epoch_end(f"{stage}/{name}", metric, prog_bar=stage != "train")

    @staticmethod
    def stage_metrics(*names: str) -> set[str]:
        """{train,val,test}/<name> for each name."""
        return {f"{stage}/{n}" for stage in STAGES for n in names}

    def _log_epoch_metrics(self, stage: str) -> None:
        for name in [n for n in self._epoch_metrics if n.startswith(stage + "/")]:
            metric, prog_bar = self._epoch_metrics.pop(name)
            if (queue := self._queues.get(id(metric))) is not None:
                queue.flush()
            if metric.update_count:
                self.log(name, metric.compute(), prog_bar=prog_bar)
            metric.reset()

    def on_train_epoch_end(self):
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self):
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self):
        self._log_epoch_metrics("test")

    def stepping_batches(self, limit: str = "trainer.max_steps or trainer.max_epochs") -> int:
        """The training batches of this run that step the optimizer: Lightning's estimated_stepping_batches (max_steps,
        or max_epochs x batches with limit_train_batches and gradient accumulation counted). A schedule's length; an
        endless run gets one line that names `limit`, the setting that bounds it."""
        steps = float(self.trainer.estimated_stepping_batches)
        if not math.isfinite(steps):
            raise DlfError(f"a learning-rate schedule needs a finite run: set {limit}")
        return int(steps)

    def schedule_length(self) -> dict:
        """{"total_iters": stepping_batches()} for a schedule sized by trainer.max_steps (scheduler=linear) when that is
        -1 (the run is sized in epochs); else {}: the schedule's own length stands."""
        if getattr(self.scheduler_factory, "keywords", {}).get("total_iters", 1) >= 1:
            return {}
        return {"total_iters": max(1, self.stepping_batches())}

    # ---- a trained system in use: inputs and outputs in the data's and the task's own units --------------------------
    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, hparams_file=None, strict=None,
                             weights_only: bool = True, **kwargs):
        """Lightning's way back, for every dlf family: the constructor's arguments are the checkpoint's
        hyper-parameters (plain types, saved by dlf.run.build: the net's config, the data's facts), or, in a
        checkpoint of dlf 0.1, which holds none, its run dir's .hydra/config.yaml (dlf.systems.saved). The system
        comes back in eval mode on `map_location`; `System.load_from_checkpoint` returns the checkpoint's own family."""
        from dlf.systems import saved

        target, hparams = saved.stored(cls, checkpoint_path, given=kwargs, hparams_file=hparams_file)
        if target is not cls:  # System.load_from_checkpoint(path): the family the checkpoint holds
            return target.load_from_checkpoint(checkpoint_path, map_location, hparams_file, strict, weights_only,
                                               **kwargs)
        args = {**saved.constructor_args(hparams, checkpoint_path), **kwargs}
        system = super().load_from_checkpoint(checkpoint_path, map_location, hparams_file, strict,
                                              weights_only=weights_only, **args)
        if hparams:
            system.save_hyperparameters(hparams, logger=False)  # saved again by a Trainer that trains it on
        return system.eval()

    def answer(self, x: torch.Tensor) -> torch.Tensor:
        """The task's answer [N, ...] for a batch of model inputs (what `predict` returns). Families override it."""
        raise DlfError(f"{type(self).__name__} has no predict: it does not answer for inputs")

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities [N, K] (a binary target: P(y=1) [N]) for a batch of model inputs."""
        raise DlfError(f"{type(self).__name__} has no predict_proba: it is not a classifier")

    def predict(self, raw):
        """The task's answer for inputs in the data's own units (one sample or a batch; the data module's own
        transform, `DataFacts.encode`, turns them into model inputs): a class index, a sum, a probability."""
        return self._answer_raw(self.answer, raw)

    def predict_proba(self, raw):
        """Class probabilities for inputs in the data's own units ([K] for one sample, [N, K] for a batch)."""
        return self._answer_raw(self.probabilities, raw)

    @torch.no_grad()
    def _answer_raw(self, fn: Callable, raw):
        x, single = self.facts.encode(raw)
        was = self.training
        self.eval()
        try:
            out = fn(x.to(self.device)).cpu()
        finally:
            self.train(was)
        if not single:
            return out
        return out[0].item() if out[0].dim() == 0 else out[0]

    # ---- what it trains ---------------------------------------------------------------------------------------------
    def nets(self) -> list[torch.nn.Module]:
        """The nets this system trains (compiled by model.compile=true): `net` here; families with more say so."""
        return [self.net]

    def scratch_option(self) -> str | None:
        """The option that chose a from-scratch part (a hand-written backward, a Python loop over time), or None:
        a module of the twins says so with FROM_SCRATCH (dlf.nets)."""
        if any(getattr(m, "FROM_SCRATCH", False) for net in self.nets() for m in net.modules()):
            return "model.net.impl=scratch"
        return None

    def steps_on_monitor(self) -> bool:
        """Whether the schedule is stepped with the validated `monitor` value once a validation (scheduler=plateau:
        torch's ReduceLROnPlateau) instead of once an optimizer step."""
        func = getattr(self.scheduler_factory, "func", self.scheduler_factory)
        return isinstance(func, type) and issubclass(func, torch.optim.lr_scheduler.ReduceLROnPlateau)

    def plateau_monitor(self) -> str:
        """The metric scheduler=plateau steps on: the run's `monitor` (one line if there is none)."""
        if not self.monitor:
            raise DlfError("scheduler=plateau lowers the rate when `monitor` stops improving, and this run has no "
                           "monitor: set monitor=val/loss (or another metric the model logs), or pick another scheduler")
        return self.monitor

    def lr_scheduler_step(self, scheduler, metric) -> None:
        """Lightning's stepping, but for scheduler=plateau, which step_plateau steps: Lightning steps an "epoch"
        schedule after the epoch's last.ckpt is written, so a run resumed from it would miss that step."""
        if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            super().lr_scheduler_step(scheduler, metric)

    def on_validation_end(self):
        self.step_plateau()

    def step_plateau(self) -> None:
        """scheduler=plateau: each ReduceLROnPlateau steps on the validated `monitor`, once a validation while
        fitting. Here because the validation's values are in trainer.callback_metrics only once it ended, and before
        the epoch's last.ckpt is written, so a run resumed from it continues from the stepped state. Families that
        optimize manually (the GAN) get it too: Lightning steps no schedule of theirs."""
        trainer = self.trainer
        if trainer.sanity_checking or not self.steps_on_monitor() or trainer.state.fn != "fit":
            return
        value = trainer.callback_metrics.get(self.plateau_monitor())
        if value is None:
            raise DlfError(f"scheduler=plateau steps on monitor={self.monitor}, which this validation did not log: set "
                           "monitor= to a metric the model validates (e.g. monitor=val/loss)")
        scheds = self.lr_schedulers()
        for sched in scheds if isinstance(scheds, list) else [scheds]:
            sched.step(float(value))

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            return torch.optim.Adam(self.parameters())
        opt = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return opt
        if self.steps_on_monitor():  # stepped by step_plateau at each validation's end (Lightning keeps its state)
            sched = {"scheduler": self.scheduler_factory(opt), "monitor": self.plateau_monitor(), "interval": "epoch",
                     "strict": False}
            return {"optimizer": opt, "lr_scheduler": sched}
        sched = self.scheduler_factory(opt, **self.schedule_length())
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def accuracy(num_classes: int | None = None) -> torchmetrics.Metric:
    """acc = 1/n sum_i [y_hat_i = y_i]: a binary target thresholds y_hat at 0.5 (num_classes=None); classes take the
    argmax (a micro average: every sample counts once). dlf.metrics.accuracy: torchmetrics' number, counted cheaply."""
    return Accuracy(binary=num_classes is None)
