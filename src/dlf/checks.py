"""Start-up checks of values every run has (seed, trainer limits, monitor, optimizer settings, checkpoint options).

They run in `dlf.train.validate`, before Hydra makes a run dir and before torch is imported, so a typo costs a second,
not a training run. Each failure is one `DlfError` line naming the value and the fix. Family-specific checks live with
the family (its system or data module) and run when those are built. The catalogue is docs/bad_inputs.md.
"""

from __future__ import annotations

import re

from omegaconf import DictConfig

from dlf.errors import DlfError

PRECISIONS = ("64", "64-true", "32", "32-true", "16", "16-mixed", "16-true", "bf16", "bf16-mixed", "bf16-true",
              "transformer-engine", "transformer-engine-float16")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int_at_least(v, low: int, name: str, example: str, none_ok: bool = False) -> None:
    if v is None and none_ok:
        return
    if not _is_int(v) or v < low:
        what = "an integer" if low <= -1 else ("a positive integer" if low == 1 else f"an integer >= {low}")
        extra = " (-1: no limit)" if low == -1 else ""
        raise DlfError(f"{name}={v!r} must be {what}{extra}: set e.g. {name}={example}")


def _check_limit(v, name: str) -> None:
    """Lightning's limit_*_batches / overfit_batches: a fraction in [0, 1] or a whole number of batches >= 0."""
    if v is None:
        return
    if not _is_num(v) or v < 0 or (isinstance(v, float) and v > 1.0):
        raise DlfError(f"trainer.{name}={v!r} must be a fraction in [0, 1] or a number of batches >= 0: set e.g. "
                       f"trainer.{name}=1.0")


def validate_more(cfg: DictConfig) -> None:
    seed = cfg.get("seed")
    if not _is_int(seed) or not 0 <= seed < 2**32:
        raise DlfError(f"seed={seed!r} must be an integer in [0, 2**32): set e.g. seed=42")
    task = cfg.get("task_name")
    if not isinstance(task, str) or not re.fullmatch(r"[\w.\-]+", task):
        raise DlfError(f"task_name={task!r} names a folder under logs/: use letters, digits, '_', '-' or '.' only, "
                       "e.g. task_name=my_run")
    for key in ("train", "test"):
        if not isinstance(cfg.get(key, True), bool):
            raise DlfError(f"{key}={cfg.get(key)!r} must be true or false: set {key}=true or {key}=false")
    if not cfg.get("train", True) and not cfg.get("test", True):
        raise DlfError("train=false and test=false leave nothing to do: set train=true or test=true")
    mode = cfg.get("monitor_mode", "min")
    if mode not in ("min", "max"):
        raise DlfError(f"monitor_mode={mode!r} must be min or max: set monitor_mode=min (a loss) or max (an accuracy)")
    monitor = cfg.get("monitor")
    if monitor is not None and (not isinstance(monitor, str) or not re.fullmatch(r"(train|val|test)/\w[\w/.\-]*",
                                                                                    monitor)):
        raise DlfError(f"monitor={monitor!r} is not a metric name: metrics are named stage/name, e.g. monitor=val/loss "
                       "or monitor=val/acc")
    _check_trainer(cfg.get("trainer") or {})
    _check_optimizer(cfg.get("optimizer") or {})
    _check_callbacks(cfg.get("callbacks") or {})


def _check_trainer(t) -> None:
    _int_at_least(t.get("max_epochs"), -1, "trainer.max_epochs", "10", none_ok=True)
    _int_at_least(t.get("max_steps"), -1, "trainer.max_steps", "1000", none_ok=True)
    _int_at_least(t.get("min_epochs"), 0, "trainer.min_epochs", "1", none_ok=True)
    me, mi = t.get("max_epochs"), t.get("min_epochs")
    if _is_int(me) and _is_int(mi) and me >= 0 and mi > me:
        raise DlfError(f"trainer.min_epochs={mi} is more than trainer.max_epochs={me}: lower trainer.min_epochs")
    _int_at_least(t.get("check_val_every_n_epoch"), 1, "trainer.check_val_every_n_epoch", "1", none_ok=True)
    _int_at_least(t.get("log_every_n_steps"), 1, "trainer.log_every_n_steps", "10", none_ok=True)
    _int_at_least(t.get("accumulate_grad_batches"), 1, "trainer.accumulate_grad_batches", "1", none_ok=True)
    for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "overfit_batches"):
        _check_limit(t.get(name), name)
    clip = t.get("gradient_clip_val")
    if clip is not None and (not _is_num(clip) or clip < 0):
        raise DlfError(f"trainer.gradient_clip_val={clip!r} must be a number >= 0 (the largest gradient norm): set "
                       "e.g. trainer.gradient_clip_val=1.0, or null for no clipping")
    prec = t.get("precision")
    if prec is not None and str(prec) not in PRECISIONS:
        raise DlfError(f"trainer.precision={prec!r} is not a precision Lightning knows: use 32-true (CPU), or "
                       "16-mixed / bf16-mixed on a GPU")
    det = t.get("deterministic")
    if det is not None and not isinstance(det, bool) and det != "warn":
        raise DlfError(f"trainer.deterministic={det!r} must be true, false or warn: set trainer.deterministic=true")
    dev = t.get("devices")
    listed = hasattr(dev, "__len__") and not isinstance(dev, str)
    if dev is not None and dev != "auto" and not listed and not (_is_int(dev) and (dev >= 1 or dev == -1)):
        raise DlfError(f"trainer.devices={dev!r} must be a positive integer or auto: set trainer.devices=1")
    accel = str(t.get("accelerator", "auto")).lower()
    if accel not in ("auto", "cpu", "gpu", "cuda", "mps", "tpu"):
        raise DlfError(f"trainer.accelerator={accel!r} is not known: use cpu, gpu or auto (or trainer=cpu|gpu|default)")


def _check_optimizer(o) -> None:
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


def _check_callbacks(c) -> None:
    for name, cb in c.items():
        if not isinstance(cb, DictConfig) or not str(cb.get("_target_", "")).endswith(("ModelCheckpoint", "LastCheckpoint")):
            continue
        n = cb.get("every_n_train_steps")
        if n is not None:
            _int_at_least(n, 0, f"callbacks.{name}.every_n_train_steps", "100")
        k = cb.get("save_top_k")
        if k is not None:
            _int_at_least(k, -1, f"callbacks.{name}.save_top_k", "1")
