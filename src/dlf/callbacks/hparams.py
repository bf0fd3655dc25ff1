"""TensorBoard's HPARAMS tab for dlf runs: the hyper-parameters a person compares, with each run's final metrics.

Logged once per run, at its end: the config group choices (`model=mlp_xor`, `optimizer=adam`, ... from Hydra's
`runtime.choices`), every key set on the command line (`optimizer.lr=0.05`, flattened: one column each) and the seed —
not the whole resolved tree, which would bury the few columns that differ under hundreds that don't. The metrics are
the monitored metric's best and last value (`hp/best`, `hp/last`) and the test metrics (`hp/test/acc`, ...), written as
scalars under `hp/` so the HPARAMS table and its parallel-coordinates view can sort and colour the runs of a sweep
(Lightning's advice: metrics of the hparams summary get their own tags, apart from the training curves).
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

SKIP_KEYS = ("ckpt_path", "hparams_search", "paths")  # where files are, not how the model was trained


def compared_hparams(seed: Any = None) -> dict[str, Any]:
    """Group choices and command-line keys of the running Hydra job, flattened to TensorBoard's value types."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params: dict[str, Any] = {}
    if not HydraConfig.initialized():  # built outside a Hydra run (the compose API in tests): only the seed
        return {"seed": seed} if seed is not None else {}
    hc = HydraConfig.get()
    for group, choice in hc.runtime.choices.items():
        if group != "hydra" and not group.startswith("hydra/") and group not in SKIP_KEYS and choice is not None:
            params[group] = str(choice)
    for o in OverridesParser.create().parse_overrides([str(x) for x in hc.overrides.task]):
        key = o.key_or_group
        if key.split(".")[0] in SKIP_KEYS or key in hc.runtime.choices or o.is_delete():
            continue
        params[key] = _tb_value(o.value())
    if seed is not None:
        params.setdefault("seed", seed)
    return params


def _tb_value(v: Any) -> Any:
    """TensorBoard takes bool, int, float and str: lists, dicts and None become their text."""
    if isinstance(v, (bool, int, float, str)):
        return v
    return "null" if v is None else str(v)


class HParams(L.Callback):
    """Write the HPARAMS summary (hyper-parameters + metrics) to every TensorBoard logger once the run's last stage ends:
    after test if the run tests (`after_test`), else after fit."""

    def __init__(self, monitor: str, mode: str = "min", seed: Any = None, after_test: bool = True) -> None:
        self.monitor, self.mode, self.seed, self.after_test = monitor, mode, seed, after_test
        self.best: float | None = None
        self.last: float | None = None
        self.done = False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        self.last = float(trainer.callback_metrics[self.monitor])
        if math.isfinite(self.last) and (self.best is None or (self.last > self.best if self.mode == "max"
                                                               else self.last < self.best)):
            self.best = self.last

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.after_test:
            self._write(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._write(trainer)  # a failed or diverged run still shows in the table, with what it reached

    def _write(self, trainer: L.Trainer) -> None:
        if self.done:
            return
        self.done = True
        metrics = {"hp/best": self.best, "hp/last": self.last}
        metrics.update({f"hp/{k}": float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
        metrics = {k: v for k, v in metrics.items() if v is not None}
        params = compared_hparams(self.seed)
        for lg in trainer.loggers:
            if isinstance(lg, TensorBoardLogger) and trainer.is_global_zero:
                writer = lg.experiment
                from torch.utils.tensorboard.summary import hparams  # 40 ms of imports: only when a run writes them

                exp, ssi, sei = hparams(params, metrics)  # the hparams plugin's experiment + session start/end
                for summary in (exp, ssi, sei):
                    writer.file_writer.add_summary(summary)
                for k, v in metrics.items():
                    writer.add_scalar(k, v, trainer.global_step)
                writer.flush()
