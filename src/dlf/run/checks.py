"""The start-up checks of a composed config: one small function per concern, run in order by `check_config` (the
table `CHECKS`). They run once, in `dlf.run.train.prepare` (called by `dlf.run.cli.Startup` before Hydra makes a run dir) and
before torch is imported (only the GPU and DDP checks import it, and only for a GPU or DDP run), so a typo costs a
second, not a training run. Each failure is one `DlfError` line naming the value and the fix; the catalogue is
docs/bad_inputs.md.

The types of the keys that matter are declared in `dlf.run.schema` (dataclasses in Hydra's ConfigStore) and checked by
Hydra as it composes; the checks here add what a type cannot say (ranges, one field against another), in the same
words for the same key (`message`). They still take a value of any type: a config built in code
(`OmegaConf.create`, `open_dict`) has no schema. Rules that need the data or the built model (a model that cannot
take a dataset, a metric the model never logs) stay with the system or data module. A rule that also guards library use
(a data module or net built without the CLI) lives in dlf.errors, which both call: `check_batch_size`, `check_impl`.
"""

from __future__ import annotations

import re

from omegaconf import DictConfig, OmegaConf

from dlf.errors import IMPLS, RULES, DlfError, is_int, message  # noqa: F401 - IMPLS, RULES: read by tests and docs
from dlf.errors import check_batch_size as batch_size
from dlf.errors import check_impl as impl

PRECISIONS = ("64", "64-true", "32", "32-true", "16", "16-mixed", "16-true", "bf16", "bf16-mixed", "bf16-true",
              "transformer-engine", "transformer-engine-float16")
# Keys an older dlf read that live elsewhere now (README, Changelog): the old key -> where it went.
MOVED = {"lr_table": "model.lr_table", "adam_betas": "model.adam_betas",
         "model.lr_decay": "the scheduler group (scheduler=linear | none)"}


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int_at_least(v, low: int, name: str, example: str, none_ok: bool = False) -> None:
    if v is None and none_ok:
        return
    if not is_int(v) or v < low:
        what = "an integer" if low <= -1 else ("a positive integer" if low == 1 else f"an integer >= {low}")
        extra = " (-1: no limit)" if low == -1 else ""
        raise DlfError(f"{name}={v!r} must be {what}{extra}: set e.g. {name}={example}")


# ---- the config checks, one per concern -----------------------------------------------------------------------------
def resolves(cfg: DictConfig) -> None:
    """Every value is given (no ???) and every ${...} resolves."""
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as e:
        key = getattr(e, "full_key", None) or str(e)
        raise DlfError(f"missing required value '{key}': set it on the command line, e.g. {key}=<value>") from None
    except InterpolationResolutionError as e:
        key = getattr(e, "full_key", None) or "?"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DlfError(f"cannot resolve {key}: {first}: fix the ${{...}} reference") from None


def moved_keys(cfg: DictConfig) -> None:
    """A key an older dlf read (e.g. a user's model config setting a top-level lr_table) would be ignored silently."""
    for old, new in MOVED.items():
        if OmegaConf.select(cfg, old, default=None) is not None:
            raise DlfError(f"{old} is no longer read: it moved to {new} (README, Changelog): move it there")


def seed(cfg: DictConfig) -> None:
    s = cfg.get("seed")
    if not is_int(s) or not 0 <= s < 2**32:
        raise DlfError(message("seed", s))


def task_name(cfg: DictConfig) -> None:
    task = cfg.get("task_name")
    if not isinstance(task, str) or not re.fullmatch(r"[\w.\-]+", task):
        raise DlfError(f"task_name={task!r} names a folder under logs/: use letters, digits, '_', '-' or '.' only, "
                       "e.g. task_name=my_run")


def train_and_test(cfg: DictConfig) -> None:
    for key in ("train", "test"):
        if not isinstance(cfg.get(key, True), bool):
            raise DlfError(f"{key}={cfg.get(key)!r} must be true or false: set {key}=true or {key}=false")
    if not cfg.get("train", True) and not cfg.get("test", True):
        raise DlfError("train=false and test=false leave nothing to do: set train=true or test=true")


def monitor(cfg: DictConfig) -> None:
    """monitor_mode and the form of monitor (whether the model logs it is checked once the model is built)."""
    mode = cfg.get("monitor_mode", "min")
    if mode not in ("min", "max"):
        raise DlfError(f"monitor_mode={mode!r} must be min or max: set monitor_mode=min (a loss) or max (an accuracy)")
    m = cfg.get("monitor")
    if m is not None and (not isinstance(m, str) or not re.fullmatch(r"(train|val|test)/\w[\w/.\-]*", m)):
        raise DlfError(f"monitor={m!r} is not a metric name: metrics are named stage/name, e.g. monitor=val/loss "
                       "or monitor=val/acc")


def trainer_loop(cfg: DictConfig) -> None:
    """How long and how often: epochs, steps, validation and logging cadence, batch limits, clipping."""
    t = cfg.get("trainer") or {}
    _int_at_least(t.get("max_epochs"), -1, "trainer.max_epochs", "10", none_ok=True)
    _int_at_least(t.get("max_steps"), -1, "trainer.max_steps", "1000", none_ok=True)
    _int_at_least(t.get("min_epochs"), 0, "trainer.min_epochs", "1", none_ok=True)
    me, mi = t.get("max_epochs"), t.get("min_epochs")
    if is_int(me) and is_int(mi) and me >= 0 and mi > me:
        raise DlfError(f"trainer.min_epochs={mi} is more than trainer.max_epochs={me}: lower trainer.min_epochs")
    _int_at_least(t.get("check_val_every_n_epoch"), 1, "trainer.check_val_every_n_epoch", "1", none_ok=True)
    _int_at_least(t.get("log_every_n_steps"), 1, "trainer.log_every_n_steps", "10", none_ok=True)
    _int_at_least(t.get("accumulate_grad_batches"), 1, "trainer.accumulate_grad_batches", "1", none_ok=True)
    for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "overfit_batches"):
        v = t.get(name)  # Lightning's form: a fraction in [0, 1] or a whole number of batches >= 0
        if v is not None and (not _is_num(v) or v < 0 or (isinstance(v, float) and v > 1.0)):
            raise DlfError(f"trainer.{name}={v!r} must be a fraction in [0, 1] or a number of batches >= 0: set e.g. "
                           f"trainer.{name}=1.0")
    clip = t.get("gradient_clip_val")
    if clip is not None and (not _is_num(clip) or clip < 0):
        raise DlfError(f"trainer.gradient_clip_val={clip!r} must be a number >= 0 (the largest gradient norm): set "
                       "e.g. trainer.gradient_clip_val=1.0, or null for no clipping")
    det = t.get("deterministic")
    if det is not None and not isinstance(det, bool) and det != "warn":
        raise DlfError(f"trainer.deterministic={det!r} must be true, false or warn: set trainer.deterministic=true")


def trainer_hardware(cfg: DictConfig) -> None:
    """Precision, devices and accelerator as Lightning knows them (whether a GPU is there: `gpu_visible`)."""
    t = cfg.get("trainer") or {}
    prec = t.get("precision")
    if prec is not None and str(prec) not in PRECISIONS:
        raise DlfError(f"trainer.precision={prec!r} is not a precision Lightning knows: use 32-true (CPU), or "
                       "16-mixed / bf16-mixed on a GPU")
    dev = t.get("devices")
    listed = hasattr(dev, "__len__") and not isinstance(dev, str)
    if dev is not None and dev != "auto" and not listed and not (is_int(dev) and (dev >= 1 or dev == -1)):
        raise DlfError(f"trainer.devices={dev!r} must be a positive integer or auto: set trainer.devices=1")
    accel = str(t.get("accelerator", "auto")).lower()
    if accel not in ("auto", "cpu", "gpu", "cuda", "mps", "tpu"):
        raise DlfError(f"trainer.accelerator={accel!r} is not known: use cpu, gpu or auto (or trainer=cpu|gpu|default)")


def optimizer(cfg: DictConfig) -> None:
    """The learning rate and the optimizer's other settings, where the chosen optimizer has them."""
    o = cfg.get("optimizer") or {}
    lr = o.get("lr")
    if lr is not None and (not _is_num(lr) or not lr > 0):
        raise DlfError(message("optimizer.lr", lr))
    for key in ("momentum", "alpha", "dampening"):
        v = o.get(key)
        if v is not None and (not _is_num(v) or not 0 <= v <= 1):
            raise DlfError(f"optimizer.{key}={v!r} must be a number in [0, 1]: set e.g. optimizer.{key}=0.9")
    wd = o.get("weight_decay")
    if wd is not None and (not _is_num(wd) or wd < 0):
        raise DlfError(f"optimizer.weight_decay={wd!r} must be a number >= 0: set e.g. optimizer.weight_decay=0.0")
    eps = o.get("eps")
    if eps is not None and (not _is_num(eps) or eps <= 0):
        raise DlfError(f"optimizer.eps={eps!r} must be a small positive number: set e.g. optimizer.eps=1e-8")
    betas = o.get("betas")
    if betas is not None:
        ok = hasattr(betas, "__len__") and len(betas) == 2 and all(_is_num(b) and 0 <= b < 1 for b in betas)
        if not ok:
            raise DlfError(f"optimizer.betas={list(betas) if hasattr(betas, '__len__') else betas!r} must be two "
                           "numbers in [0, 1): set e.g. optimizer.betas=[0.9,0.999]")


def data(cfg: DictConfig) -> None:
    d = cfg.get("data") or {}
    if "batch_size" in d:
        batch_size(d.batch_size)


def impls(cfg: DictConfig) -> None:
    """model.net.impl (every family's net) and model.impl (the GAN's loss): torch or scratch."""
    for key in ("model.net.impl", "model.impl"):
        v = OmegaConf.select(cfg, key, default=None)
        if v is not None:
            impl(v, key)


def callbacks(cfg: DictConfig) -> None:
    """The checkpoint callbacks' cadence and how many to keep; early stopping's patience and least improvement."""
    for name, cb in (cfg.get("callbacks") or {}).items():
        target = str(cb.get("_target_", "")) if isinstance(cb, DictConfig) else ""
        if target.endswith("EarlyStopping"):
            if not cb.get("monitor"):
                raise DlfError(f"callbacks.{name} stops training when `monitor` stops improving, and this run has no "
                               "monitor: set monitor=val/loss (or another metric the model logs), or drop "
                               "callbacks=early_stopping")
            _int_at_least(cb.get("patience"), 0, f"callbacks.{name}.patience", "3", none_ok=True)
            d = cb.get("min_delta")
            if d is not None and (not _is_num(d) or d < 0):
                raise DlfError(f"callbacks.{name}.min_delta={d!r} must be a number >= 0 (the least change of `monitor` "
                               f"that counts as an improvement): set e.g. callbacks.{name}.min_delta=0.001")
        if not target.endswith(("ModelCheckpoint", "LastCheckpoint")):
            continue
        n = cb.get("every_n_train_steps")
        if n is not None:
            _int_at_least(n, 0, f"callbacks.{name}.every_n_train_steps", "100")
        k = cb.get("save_top_k")
        if k is not None:
            _int_at_least(k, -1, f"callbacks.{name}.save_top_k", "1")


def scheduler(cfg: DictConfig) -> None:
    """scheduler=plateau steps on `monitor`: a run without one is refused here, not at the first validation."""
    target = str((cfg.get("scheduler") or {}).get("_target_", ""))
    if target.endswith("ReduceLROnPlateau") and not cfg.get("monitor"):
        raise DlfError("scheduler=plateau lowers the rate when `monitor` stops improving, and this run has no "
                       "monitor: set monitor=val/loss (or another metric the model logs), or pick another scheduler")


# Loggers whose package comes with an extra of dlf (pyproject.toml): the logger class -> (its package, the extra)
LOGGER_EXTRAS = {"MLFlowLogger": ("mlflow", "mlflow"), "WandbLogger": ("wandb", "wandb")}


def logger_packages(cfg: DictConfig) -> None:
    """A logger whose package is not installed (`logger=mlflow` without the [mlflow] extra): the extra to install."""
    import importlib.util

    for name, lg in (cfg.get("logger") or {}).items():
        target = str(lg.get("_target_", "")) if isinstance(lg, DictConfig) else ""
        package, extra = LOGGER_EXTRAS.get(target.rpartition(".")[2], (None, None))
        if package is None:
            continue
        try:
            found = importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise DlfError(f"logger.{name} ({target}) needs the {package} package, which is not installed in this "
                           f'Python: pip install -e ".[{extra}]" (or pip install {package}), or choose another logger')


def ddp(cfg: DictConfig) -> None:
    """Many processes: set-ups that would hang or crash inside torch.distributed (dlf.distributed.check)."""
    from dlf import distributed  # [ddp]

    distributed.check(cfg)  # [ddp]


def gpu_visible(cfg: DictConfig) -> None:
    """trainer=gpu on a machine without CUDA (after `ddp`, which says it in DDP's terms)."""
    accel = str((cfg.get("trainer") or {}).get("accelerator", "auto")).lower()
    if accel in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise DlfError("trainer=gpu asks for a CUDA GPU but none is visible here (torch.cuda.is_available() is "
                           "False): use trainer=cpu, or trainer=default to pick the GPU only when there is one")


# In order: a check may rely on the ones before it (values resolve first; DDP before the GPU check).
CHECKS = (resolves, moved_keys, seed, task_name, train_and_test, monitor, trainer_loop, trainer_hardware,
          optimizer, data, impls, callbacks, scheduler, logger_packages, ddp, gpu_visible)


def check_config(cfg: DictConfig) -> None:
    """Run every check of CHECKS on the composed config (without the hydra node). See docs/bad_inputs.md."""
    for check in CHECKS:
        check(cfg)
