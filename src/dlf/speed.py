"""Speed options users expect, applied in one place: `model.compile=true` (torch.compile of the net(s)) and the
checks that `trainer.precision=bf16-mixed` / compile can run with the chosen family.

`model.compile` is not an argument of any system: `model_config` drops it before Hydra instantiates the model, and
`apply` compiles the nets after the model is built (before Lightning sees it; the weights and their names in
checkpoints do not change: nn.Module.compile compiles forward in place).
"""

from __future__ import annotations

from contextlib import nullcontext

from lightning.pytorch.profilers import PassThroughProfiler
from omegaconf import DictConfig, open_dict

from dlf.errors import DlfError

KEYS = ("compile", "lr_table", "adam_betas")  # model.<key>s no system constructor takes: an option of the run
# (compile), the model's preferred optimizer settings that the optimizer configs read (${oc.select:model.lr_table.adam,..})


def model_config(model_cfg: DictConfig) -> DictConfig:
    """cfg.model without KEYS: what the system's constructor takes."""
    if not any(k in model_cfg for k in KEYS):
        return model_cfg
    out = model_cfg.copy()
    with open_dict(out):
        for k in KEYS:
            out.pop(k, None)
    return out


def _nets(model) -> list:
    """The trainable nets of a dlf system: G and D for a GAN, else net (and head for sequence models)."""
    names = ("G", "D") if hasattr(model, "G") else ("net", "head")
    return [getattr(model, n) for n in names if getattr(model, n, None) is not None]


def _scratch(model) -> str | None:
    """The option that chose a from-scratch part (hand-written backward, a Python loop over time), or None."""
    if hasattr(model, "G") and getattr(model, "impl", None) == "scratch":
        return "model.impl=scratch"
    if any(type(m).__name__.startswith("Scratch") for net in _nets(model) for m in net.modules()):
        return "model.net.impl=scratch"
    return None


def apply(model, cfg: DictConfig) -> None:
    """model.compile=true: torch.compile each net in place. bf16-mixed or compile with a from-scratch twin (its
    hand-written torch.autograd.Function computes in float32 and checks its own dtypes): one line at start-up."""
    compile_ = bool(cfg.model.get("compile", False))
    precision = str(cfg.trainer.get("precision", "32-true"))
    scratch = _scratch(model)
    if scratch and precision.startswith(("bf16", "16")):
        raise DlfError(f"trainer.precision={precision} cannot be used with {scratch}: the from-scratch twin writes "
                       "its backward by hand in float32; use impl=torch for mixed precision, or trainer.precision=32-true")
    if compile_ and scratch:
        raise DlfError(f"model.compile=true cannot be used with {scratch}: the from-scratch twin is the course's "
                       "readable loop, not a graph to compile; use impl=torch, or model.compile=false")
    if compile_:
        for net in _nets(model):
            net.compile()


class NoProfiler(PassThroughProfiler):
    """The Trainer's profiler when none is asked for (`trainer.profiler=simple` or `advanced` still profile).

    Lightning wraps every hook call, on the module and on each callback, in `trainer.profiler.profile(name)`; its
    default PassThroughProfiler answers with a fresh generator-based context manager each time, about 100 a training
    step with dlf's callbacks (a few microseconds each: on a sub-millisecond step, a tenth of the step). Nothing is
    measured either way; this one hands back one shared no-op context instead."""

    _NOTHING = nullcontext()

    def profile(self, action_name: str):
        return self._NOTHING


def profiler(cfg: DictConfig):
    """What the Trainer gets as `profiler`: the one the config names (simple, advanced, pytorch, or a _target_ that
    Hydra built), else NoProfiler."""
    return cfg.trainer.get("profiler") or NoProfiler()
