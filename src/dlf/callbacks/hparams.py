"""TensorBoard's HPARAMS tab for dlf runs, right for a log dir of many tasks, sweeps and single runs.

How the hparams plugin reads a log dir (tensorboard/plugins/hparams/backend_context.py): if any run holds an
*experiment* summary, it takes the first one it finds as the experiment of the whole log dir (its columns, its
metrics); with none, it unions every run's *session start* record into the columns, marks each column whose values
differ between runs (those are listed first, and the table shows the first five), and takes every scalar tag of the
session runs as a metric. So a dlf run writes a session start record (when training starts) and a session end record
(status, when it ends), never an experiment: every run is a row, and the columns are the union over the log dir.

The columns of a run (`run_hparams`):
- the config groups a person picks (model, data, optimizer, scheduler, trainer; experiment and debug when set) and any
  other group chosen on the command line; every key set on the command line, flattened (`model.net.hidden`);
- what the run trained with, resolved: `lr` (each optimizer's rate as the run built it, e.g. from the model's
  `lr_table`; when a run's optimizers differ, `lr` is the first's and `lr/1`, ... the others': the GAN's D, then G),
  `batch_size`, `steps` (the optimizer steps it is set to take), `seed`, and the model's widths (`model.net.hidden`,
  `hidden_size`, `num_layers`, `width`, `model.latent_dim`, the CNN's `filters`);
- `job`: a sweep job's number, numeric, so the table sorts a sweep in job order (its dir names sort 0, 1, 10, 11, 2).
Never Hydra's bookkeeping (`schema@*`, `hydra/*`, `paths`, `callbacks`, `logger`).

The metrics are the monitored metric's best and last value and the test metrics, written as scalars at the run's end
(`hp/best`, `hp/last`, `hp/test/acc`, ...). TensorBoard also lists a run's other scalar tags as metrics (it cannot be
told otherwise without an experiment summary); it sorts them by name, so these come before train/ and val/.

Run dirs of dlf up to 23bf94c wrote an experiment summary each (whose columns TensorBoard then took for every run) and
columns such as `schema@_global_`: `dlf-compare --fix-tensorboard DIR` rewrites their records in place (`fix_run`).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

from dlf.faults import atomic_write

GROUPS = ("model", "data", "optimizer", "scheduler", "trainer", "experiment", "debug")  # a column each, when chosen
SKIP_KEYS = ("ckpt_path", "hparams_search", "paths", "hydra")  # where files are, not how the model was trained
RESOLVED = {"optimizer.lr": "lr", "data.batch_size": "batch_size"}  # an override shows in the resolved column
WIDTH_KEYS = ("model.net.hidden", "model.net.d_hidden", "model.net.hidden_size", "model.net.num_layers",
              "model.net.width", "model.latent_dim")


def tb_value(v: Any) -> Any:
    """TensorBoard takes bool, int, float and str: lists, dicts and None become their text."""
    if isinstance(v, (bool, int, float, str)):
        return v
    from omegaconf import OmegaConf

    if OmegaConf.is_config(v):
        v = OmegaConf.to_container(v, resolve=True)
    return "null" if v is None else str(v)


def hydra_hparams(hydra) -> dict[str, Any]:
    """Group choices, command-line keys and the job number of a Hydra job (`HydraConfig.get()` of a running job, or
    the `hydra` node of a run dir's .hydra/hydra.yaml)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    choices = {str(g): c for g, c in (hydra.runtime.choices or {}).items()}
    params: dict[str, Any] = {g: str(choices[g]) for g in GROUPS if choices.get(g) is not None}
    for o in OverridesParser.create().parse_overrides([str(x) for x in hydra.overrides.task]):
        key = o.key_or_group
        if key.split(".")[0].split("/")[0] in SKIP_KEYS or o.is_delete():
            continue
        if key in choices:  # a group chosen on the command line (callbacks=early_stopping)
            if choices[key] is not None and not key.startswith("schema@"):
                params[key] = str(choices[key])
            continue
        params[RESOLVED.get(key, key)] = tb_value(o.value())
    if str(hydra.get("mode")) in ("MULTIRUN", "RunMode.MULTIRUN") and hydra.job.get("num") is not None:
        params["job"] = int(hydra.job.num)
    return params


def config_hparams(cfg) -> dict[str, Any]:
    """`seed` and the model's widths from a composed config (or a run dir's .hydra/config.yaml); `lr` and
    `batch_size` as the config resolves them (a running job reads them off its optimizers and data instead)."""
    from omegaconf import OmegaConf

    def get(key):
        return OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)

    params = {RESOLVED.get(k, k): get(k) for k in ("seed", "optimizer.lr", "data.batch_size", *WIDTH_KEYS)}
    blocks = get("model.net.blocks")
    if blocks:
        params["filters"] = ",".join(str(b.get("filters")) for b in blocks)
    return {k: tb_value(v) for k, v in params.items() if v is not None}


def live_hparams(trainer: L.Trainer) -> dict[str, Any]:
    """What a running job trains with: each optimizer's rate, the batch size, the optimizer steps it is set to take."""
    params: dict[str, Any] = {}
    try:
        rates = [float(pg.get("initial_lr", pg["lr"])) for opt in trainer.optimizers for pg in opt.param_groups[:1]]
        steps = trainer.max_steps if trainer.max_steps > 0 else trainer.estimated_stepping_batches
    except Exception:  # noqa: BLE001 - a run that failed before its optimizers or loops were set up
        return params
    for i, rate in enumerate(rates):
        if i == 0 or rate != rates[0]:
            params["lr" if i == 0 else f"lr/{i}"] = rate
    batch = getattr(trainer.datamodule, "batch_size", None)
    if isinstance(batch, int):
        params["batch_size"] = batch
    if isinstance(steps, (int, float)) and math.isfinite(steps):
        params["steps"] = int(steps)
    return params


def run_hparams(config=None, hydra=None, live: dict | None = None) -> dict[str, Any]:
    """A run's HPARAMS columns: its Hydra job's choices and keys, its config's resolved values, then what it really
    trained with (`live`, which wins)."""
    params: dict[str, Any] = {}
    if config is not None:
        params.update(config_hparams(config))
    if hydra is not None:
        params.update(hydra_hparams(hydra))
    params.update(live or {})
    return params


def session_start(params: dict[str, Any], start_time: float | None = None):
    """The hparams plugin's session start record (a Summary), its group name left empty: the run is its own row,
    named after its run dir."""
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    info = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time() if start_time is None else start_time)
    for name in sorted(params):
        v = params[name]
        if isinstance(v, bool):
            info.hparams[name].bool_value = v
        elif isinstance(v, (int, float)):
            info.hparams[name].number_value = v
        else:
            info.hparams[name].string_value = str(v)
    return _summary(metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=info))


def session_end(ok: bool, end_time: float | None = None):
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    info = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS if ok else api_pb2.STATUS_FAILURE,
                                          end_time_secs=time.time() if end_time is None else end_time)
    return _summary(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=info))


def _summary(tag: str, data):
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata

    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR)
    return summary


class HParams(L.Callback):
    """The run's HPARAMS row: its session start record when training starts (so a running sweep shows), its session
    end record and the hp/* metrics when its last stage ends: after test if the run tests (`after_test`), else
    after fit. `model`: the run's model config (for its widths; passed unbuilt, `_recursive_: false`)."""

    def __init__(self, monitor: str, mode: str = "min", seed: Any = None, after_test: bool = True,
                 model: Any = None) -> None:
        self.monitor, self.mode, self.seed, self.after_test = monitor, mode, seed, after_test
        self.model = model
        self.best: float | None = None
        self.last: float | None = None
        self.started = False
        self.done = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        self.last = float(trainer.callback_metrics[self.monitor])
        if math.isfinite(self.last) and (self.best is None or (self.last > self.best if self.mode == "max"
                                                               else self.last < self.best)):
            self.best = self.last

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.after_test:
            self._end(trainer, ok=True)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end(trainer, ok=True)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._end(trainer, ok=False)  # a failed or diverged run still shows in the table, with what it reached

    def params(self, trainer: L.Trainer) -> dict[str, Any]:
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        config = OmegaConf.create({"seed": self.seed, "model": self.model})
        hydra = HydraConfig.get() if HydraConfig.initialized() else None  # the compose API (tests): no Hydra job
        return run_hparams(config, hydra, live_hparams(trainer))

    def _writers(self, trainer: L.Trainer) -> list:
        if not trainer.is_global_zero:
            return []
        return [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]

    def _start(self, trainer: L.Trainer) -> None:
        if self.started:
            return
        self.started = True
        writers = self._writers(trainer)
        if writers:
            record = session_start(self.params(trainer))
            for w in writers:
                w.file_writer.add_summary(record, trainer.global_step)

    def _end(self, trainer: L.Trainer, ok: bool) -> None:
        if self.done:
            return
        self._start(trainer)  # a run that tests only (train=false) or failed before training
        self.done = True
        metrics = {"hp/best": self.best, "hp/last": self.last}
        metrics.update({f"hp/{k}": float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
        for w in self._writers(trainer):
            w.file_writer.add_summary(session_end(ok), trainer.global_step)
            for k, v in metrics.items():
                if v is not None:
                    w.add_scalar(k, v, trainer.global_step)
            w.flush()


# ---- run dirs of the old layout: dlf-compare --fix-tensorboard ----

def _load_hydra(run_dir: Path):
    from omegaconf import OmegaConf

    h, c = run_dir / ".hydra" / "hydra.yaml", run_dir / ".hydra" / "config.yaml"
    return (OmegaConf.load(c) if c.is_file() else None), (OmegaConf.load(h).hydra if h.is_file() else None)


def dir_hparams(run_dir: Path) -> dict[str, Any]:
    """The columns of a finished run, from what its dir holds (.hydra/, result.json's steps)."""
    config, hydra = _load_hydra(run_dir)
    live = {}
    try:
        steps = json.loads((run_dir / "result.json").read_text()).get("steps")
        if isinstance(steps, int) and steps > 0:
            live["steps"] = steps
    except (OSError, ValueError):
        pass
    return run_hparams(config, hydra, live)


def fix_run(run_dir: Path) -> list[Path]:
    """Rewrite a run dir's event files in place as a dlf run writes them now: no experiment summary, its session
    start record's columns recomputed (`dir_hparams`), no Lightning `epoch` scalar; every other record kept byte for
    byte. Returns the files rewritten (none: nothing to fix; a second pass finds nothing)."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.hparams import metadata
    from tensorboard.summary.writer.record_writer import RecordWriter

    fixed, dropped = [], (metadata.EXPERIMENT_TAG, metadata.SESSION_START_INFO_TAG, "epoch")
    for path in sorted(run_dir.rglob("events.out.tfevents.*")):
        records, changed = [], False
        for raw in RawEventFileLoader(str(path)).Load():
            event = event_pb2.Event.FromString(raw)
            tags = [v.tag for v in event.summary.value]
            old_start = any(v.tag == metadata.SESSION_START_INFO_TAG and _has_bookkeeping(v) for v in event.summary.value)
            if metadata.EXPERIMENT_TAG in tags or "epoch" in tags or old_start:
                changed = True
                keep = [v for v in event.summary.value if v.tag not in dropped or
                        (v.tag == metadata.SESSION_START_INFO_TAG and not old_start)]
                del event.summary.value[:]
                event.summary.value.extend(keep)
                if old_start:
                    event.summary.value.extend(session_start(dir_hparams(run_dir), event.wall_time).value)
                if not event.summary.value:
                    continue
                raw = event.SerializeToString()
            records.append(raw)
        if changed:
            with atomic_write(path, tmp_prefix=".fix") as f:  # a temp name without "tfevents": no reader takes it
                writer = RecordWriter(f)
                for raw in records:
                    writer.write(raw)
            fixed.append(path)
    return fixed


def _has_bookkeeping(value) -> bool:
    """A session start record of dlf before this layout: Hydra's bookkeeping (`schema@...`) among its columns."""
    from tensorboard.plugins.hparams import metadata

    start = metadata.parse_session_start_info_plugin_data(value.metadata.plugin_data.content)
    return any(k.startswith("schema@") or k in ("callbacks", "logger") for k in start.hparams)
