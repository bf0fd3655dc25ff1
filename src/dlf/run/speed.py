"""Speed options users expect, applied in one place: `model.compile=true` (torch.compile of the net(s)) and the
checks that `trainer.precision=bf16-mixed` / compile can run with the chosen family; the Trainer's profiler.

`model.compile` is not an argument of any system (every system declares it in CONFIG_KEYS, so dlf.run.build leaves it
out), and `apply` compiles the nets the system trains (`system.nets()`) after it is built, before Lightning sees it;
the weights and their names in checkpoints do not change: nn.Module.compile compiles forward in place.
"""

from __future__ import annotations

from contextlib import nullcontext

from lightning.pytorch.profilers import PassThroughProfiler
from omegaconf import DictConfig

from dlf.errors import DlfError


def apply(system, cfg: DictConfig) -> None:
    """model.compile=true: torch.compile each net in place. bf16-mixed or compile with a from-scratch twin (its
    hand-written torch.autograd.Function computes in float32 and checks its own dtypes): one line at start-up."""
    compile_ = bool(cfg.model.get("compile", False))
    precision = str(cfg.trainer.get("precision", "32-true"))
    scratch = system.scratch_option()
    if scratch and precision.startswith(("bf16", "16")):
        raise DlfError(f"trainer.precision={precision} cannot be used with {scratch}: the from-scratch twin writes "
                       "its backward by hand in float32; use impl=torch for mixed precision, or trainer.precision=32-true")
    if compile_ and scratch:
        raise DlfError(f"model.compile=true cannot be used with {scratch}: the from-scratch twin is the course's "
                       "readable loop, not a graph to compile; use impl=torch, or model.compile=false")
    if compile_:
        for net in system.nets():
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
