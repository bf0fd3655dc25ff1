"""Every read of Lightning's private state, in one place (written against lightning 2.6).

dlf needs three things Lightning keeps to itself: whether this training step's logs will be written (to skip a
costly self.log call whose value would be dropped), how many batches of the epoch are trained (the exact resume
position of a data loader), and, inside a LightningModule, whether a Trainer is attached and which hook is running.
Each is one function below; its docstring says what it reads and why no public API serves. Four more change what
Lightning does per batch without changing a result: empty batch hooks skipped, a ModelCheckpoint's inert batch hook
dropped, a logged value's no-op device move skipped (skip_same_device_moves), and a per-step value forgotten once
Lightning has written it (forget_written_value); and one undoes, for the length of a run, a setting Lightning's import
makes that costs every optimizer step on a machine without an NVIDIA driver (cuda_check_without_failing_nvml). A
renamed attribute raises a DlfError that names it; tests/test_lightning_internals.py runs a small real Trainer and
checks each value at the moment dlf reads it, so a Lightning upgrade that changes one fails there first.
"""

from __future__ import annotations

import contextlib
import ctypes
import os

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import CombinedLoader

from dlf.errors import DlfError


def _read(obj, path: str):
    """obj.<path> (dotted), or a one-line error naming the private attribute that this Lightning no longer has."""
    value = obj
    for name in path.split("."):
        try:
            value = getattr(value, name)
        except AttributeError:
            raise DlfError(f"dlf reads Lightning's {type(obj).__name__}.{path}, which lightning {L.__version__} does "
                           "not have: install the lightning version pyproject.toml names, or update "
                           "src/dlf/lightning_internals.py") from None
    return value


def attached_trainer(module: L.LightningModule) -> L.Trainer | None:
    """The Trainer `module` is attached to, or None. Reads `LightningModule._trainer`: the public `module.trainer`
    raises when there is none, and a system is also built, logged from and summarised outside a Trainer."""
    return _read(module, "_trainer")


HOOK_ATTR = "_current_fx_name"  # the LightningModule attribute Lightning sets to the running hook's name


def current_hook(module: L.LightningModule) -> str | None:
    """The name of the hook Lightning is running on `module` ("training_step", "validation_step", ...), or None.
    Reads `LightningModule._current_fx_name`, which Lightning's own `self.log` uses to choose its defaults (on_step
    in training_step, on_epoch elsewhere); dlf's `System.log` chooses `sync_dist` by the same rule. No public API."""
    return _read(module, HOOK_ATTR)


def logs_this_step(trainer: L.Trainer) -> bool:
    """Whether Lightning will write the values logged in the current training step (every trainer.log_every_n_steps
    optimizer steps). Reads `Trainer._logger_connector.should_update_logs`: the cadence rule (which counter, the +1,
    log_every_n_steps=0) lives there only; System.log drops per-step training values Lightning would not write."""
    return bool(_read(trainer, "_logger_connector.should_update_logs"))


def forget_written_value(trainer: L.Trainer, hook: str, name: str) -> None:
    """Reset the per-step training value `name` that `hook` logged on the last written step, once Lightning has used
    it. Lightning keeps such a value (on_step, not on_epoch) in the training loop's `_ResultCollection` until the
    epoch ends, and after every batch turns it into the progress bar's, the callbacks' and the loggers' dicts again
    (`_LoggerConnector.on_batch_end`: an `.item()` and three dict updates, ~25 µs a step on CPU), although those dicts
    already hold that value. dlf's System.log calls this on the steps whose values are not written, so the dicts keep
    the last written value, as before, without the per-batch copy. Reads `Trainer.fit_loop.epoch_loop._results` and
    resets the entry with Lightning's own `_ResultMetric.reset` (what Lightning does to it at the next epoch's start);
    a value that wraps a torchmetrics Metric is left alone. tests/test_lightning_internals.py checks that the
    trainer's callback, progress bar and logged metrics and the written metrics.csv are the same with and without."""
    result = _read(trainer, "fit_loop.epoch_loop._results").get(f"{hook}.{name}")
    if result is not None and not result.has_reset and result.is_tensor:
        result.reset()


def batches_done(trainer: L.Trainer) -> int:
    """Training batches completed in the current epoch (their step and its hooks have run). Reads
    `Trainer.fit_loop.epoch_loop.batch_progress.current.processed`, Lightning's own progress counter, which is exact
    when a checkpoint is saved; counting a loader's yields would be one ahead (Lightning prefetches a batch), and
    `trainer.global_step` counts optimizer steps (two a batch for the GAN, one per k batches with accumulation)."""
    return int(_read(trainer, "fit_loop.epoch_loop.batch_progress.current.processed"))


def batches_trained(trainer: L.Trainer) -> int:
    """Training batches completed in the whole fit, earlier runs of a resumed one included (result.json's `batches`).
    Reads `Trainer.fit_loop.epoch_loop.batch_progress.total.completed`, the counter a checkpoint saves and a resume
    restores; no public API counts batches (`trainer.global_step` counts optimizer steps: d_steps + 1 per d_steps
    batches for the GAN)."""
    return int(_read(trainer, "fit_loop.epoch_loop.batch_progress.total.completed"))


def fit_position(trainer: L.Trainer | None) -> tuple[int, int] | None:
    """(epoch, batches trained in it) while `trainer` fits, from batches_done: a data loader's exact resume point at
    every checkpoint save; (next epoch, 0) once an epoch's batches are done (limit_train_batches may cut it short).
    None outside fit."""
    if trainer is None or trainer.state.fn != "fit":
        return None
    done = batches_done(trainer)
    if done >= trainer.num_training_batches:  # the epoch is over
        return trainer.current_epoch + 1, 0
    return trainer.current_epoch, done


def train_loaders(trainer: L.Trainer) -> list:
    """The training data loaders the fit loop iterates, flattened (one per loader, however the data module nested
    them). Public API: `trainer.train_dataloader` (set once fit has loaded the data, by on_train_start) flattened by
    CombinedLoader; empty before that."""
    loaders = trainer.train_dataloader
    return [] if loaders is None else CombinedLoader(loaders).flattened


# The hooks Lightning calls at every batch, on the module and on each callback. Lightning skips a hook whose attribute
# is not callable (lightning/pytorch/trainer/call.py: `if callable(fn)` in _call_callback_hooks and
# _call_lightning_module_hook), so a hook an object only inherits as Lightning's empty one can be set to None: the
# call, its log.debug line, its f-string name and its profiler context go. About 2 µs per object and hook: with dlf's
# ten callbacks, ~0.1 ms of a training step, more than a small net's forward pass. On the module only the training
# ones: the evaluation loop reads the signatures of the module's on_{validation,test}_batch_* hooks.
TRAIN_BATCH_HOOKS = ("on_train_batch_start", "on_train_batch_end", "on_before_backward", "on_after_backward",
                     "on_before_optimizer_step", "on_before_zero_grad")
BATCH_HOOKS = (*TRAIN_BATCH_HOOKS, "on_validation_batch_start", "on_validation_batch_end", "on_test_batch_start",
               "on_test_batch_end", "on_predict_batch_start", "on_predict_batch_end")


def skip_empty_batch_hooks(module: L.LightningModule, callbacks: list) -> None:
    """Set to None each batch hook that these objects inherit unchanged from Lightning's empty one (ModelHooks' for
    the module: TRAIN_BATCH_HOOKS; L.Callback's for a callback: BATCH_HOOKS); overridden hooks are untouched. Also
    the on_train_batch_end of a ModelCheckpoint with no step or time trigger (step_triggers_off), ~11 µs a step.
    tests/test_lightning_internals.py checks that Lightning still skips a None hook and calls the others."""
    from lightning.pytorch.core.hooks import ModelHooks

    for obj, base, names in [(module, ModelHooks, TRAIN_BATCH_HOOKS), *((cb, L.Callback, BATCH_HOOKS) for cb in callbacks)]:
        for name in names:
            if getattr(type(obj), name, None) is getattr(base, name):
                setattr(obj, name, None)
    for cb in callbacks:
        if isinstance(cb, ModelCheckpoint) and step_triggers_off(cb):
            cb.on_train_batch_end = None


def step_triggers_off(cb: ModelCheckpoint) -> bool:
    """A ModelCheckpoint that saves only at epoch or validation ends: its on_train_batch_end returns at once, with no
    side effect, unless `every_n_train_steps` >= 1 or `train_time_interval` is set (lightning/pytorch/callbacks/
    model_checkpoint.py). Reads ModelCheckpoint._every_n_train_steps and _train_time_interval, which have no public
    getter; tests/test_lightning_internals.py checks the checkpoints such a callback writes with and without its
    batch hook, and that one with a step trigger keeps it."""
    every, interval = _read(cb, "_every_n_train_steps"), _read(cb, "_train_time_interval")
    return every < 1 and interval is None


def choose_data_hooks_once(trainer: L.Trainer) -> None:
    """Make Lightning choose once per stage, not at every batch, whose batch-transfer hooks it calls.

    With a data module, every batch (training, validation, test) passes through three transfer hooks
    (on_before_batch_transfer, transfer_batch_to_device, on_after_batch_transfer), and for each Lightning's
    `_DataHookSelector.get_instance` asks `is_overridden` of the data module and then of the module which one implements
    it: six `is_overridden` calls a batch (attribute walks, isinstance checks), ~10 µs on CPU, which a loop given plain
    data loaders (no data module) never makes. The answer depends only on the two objects' classes, which do not change
    during a stage, so each stage's selector (made by `_DataConnector.attach_datamodule` when fit, validate or test
    starts) answers each hook name once and then from a cache. Reads `Trainer._data_connector.attach_datamodule` and
    its `_datahook_selector`; tests/test_lightning_internals.py checks that the hooks a data module or a module
    overrides are still the ones called, at every batch, and that each stage asks each hook name once."""
    import functools

    connector = _read(trainer, "_data_connector")
    attach = _read(connector, "attach_datamodule")
    if getattr(attach, "dlf_choose_once", False):
        return

    def attach_datamodule(model, datamodule=None):
        attach(model, datamodule)
        selector = _read(connector, "_datahook_selector")
        selector.get_instance = functools.cache(_read(selector, "get_instance"))

    attach_datamodule.dlf_choose_once = True
    connector.attach_datamodule = attach_datamodule


def skip_same_device_moves() -> None:
    """Make `self.log` ~0.3-0.6 ms cheaper on CPU: Lightning's `_ResultCollection.log` calls `.to(value.device)` on the
    logged value's `_ResultMetric` at every call, and that `to` rebuilds the metric's whole `__dict__` through
    `apply_to_collection` (~70 recursive calls and a deepcopy of its metadata dataclass) even when every tensor is
    already on that device, which after the first call they always are. The patched `to` returns at once when called
    with one device and all of the metric's tensors (its states, their defaults, the step's cached value) are on it;
    any other call (another device, a dtype, keyword arguments, a metric that wraps a torchmetrics Metric) runs
    Lightning's. Idempotent; done once per process by dlf.run.train.run. tests/test_lightning_internals.py checks that the
    tensors the short cut reads are every tensor Lightning's `to` would move, so a new one fails there first."""
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric

    lightning_to = _read(_ResultMetric, "to")
    if getattr(lightning_to, "dlf_short_cut", False):
        return

    def to(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and isinstance(args[0], torch.device) and on_device(self, args[0]):
            return self
        return lightning_to(self, *args, **kwargs)

    to.dlf_short_cut = True
    to.lightning_to = lightning_to
    _ResultMetric.to = to


def result_tensors(metric) -> list[torch.Tensor] | None:
    """The tensors of a Lightning `_ResultMetric` that a device move would move: those in its `__dict__` and in its
    `_defaults` (torchmetrics' reset values). None for one that wraps a torchmetrics Metric (its own `to` moves it)."""
    if not metric.__dict__.get("is_tensor", False):
        return None
    found = [v for v in metric.__dict__.values() if isinstance(v, torch.Tensor)]
    return found + [v for v in metric.__dict__.get("_defaults", {}).values() if isinstance(v, torch.Tensor)]


def on_device(metric, device: torch.device) -> bool:
    """Whether every tensor a device move of this `_ResultMetric` would move is on `device` (False for a wrapper)."""
    tensors = result_tensors(metric)
    return tensors is not None and all(t.device == device for t in tensors)


NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"  # set to "1" by `import lightning` (lightning/fabric/__init__.py)


def nvml_loads() -> bool:
    """Whether NVIDIA's management library (libnvidia-ml.so.1, installed with the driver) can be loaded here."""
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def cuda_check_without_failing_nvml():
    """For the length of a run, on a machine without NVIDIA's driver: let torch ask the CUDA runtime whether a GPU is
    there, as it does anyway after its NVML attempt fails, without the failed attempt at every optimizer step.

    `import lightning` sets PYTORCH_NVML_BASED_CUDA_CHECK=1 so that `torch.cuda.is_available()` asks NVML instead of
    initialising CUDA (which would poison forked data-loader workers). torch's Adam, RMSprop (and Adadelta, Adamax,
    NAdam, RAdam, Rprop, ASGD) call `torch.accelerator.current_accelerator(check_available=True)` at every step.
    Where libnvidia-ml.so.1 is missing (every CPU-only laptop and CI runner), each such call makes torch try to
    dlopen it (a search of the library path, and a ctypes class built), catch the OSError and fall back to
    `torch._C._cuda_getDeviceCount()`: ~50 µs a step for the same answer (measured alone; more inside a run), as much
    as a small net's forward pass. There, unsetting the variable makes torch call that fallback directly: the answer
    is the same at every call. Where the library loads (a GPU machine), or torch has no CUDA or is a ROCm build
    (which asks AMD's library instead), or the variable is not "1", nothing changes. The variable is restored when
    the run ends. tests/test_lightning_internals.py checks that Lightning still sets it, that torch still tries NVML
    at every Adam step under it, and that the answer and the training are the same without it."""
    if os.environ.get(NVML_CHECK) != "1" or not torch.backends.cuda.is_built() or torch.version.hip or nvml_loads():
        yield
        return
    del os.environ[NVML_CHECK]
    try:
        yield
    finally:
        os.environ.setdefault(NVML_CHECK, "1")
