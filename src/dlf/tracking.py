"""Experiment trackers for dlf runs: Lightning's `MLFlowLogger` and `WandbLogger` (`logger=mlflow`, `logger=wandb`),
with what a dlf run dir needs of them.

- One run dir is one tracker run. Its id is kept in `<run dir>/trackers.json`, so a resumed run (`ckpt_path=last`
  reopens the checkpoint's own run dir) or a continued sweep job logs into the MLflow / W&B run it started, its steps
  following on, instead of opening a new one.
- `tracked(trainer, cfg)` wraps a run's fit and test (dlf.run.train.run): the resolved config (without `hydra`),
  flattened to `model.net.hidden`-style keys, becomes the run's params (MLflow) / config (W&B), and the W&B run is
  finished when the job ends. Lightning's WandbLogger leaves its run open, and the next job of a multirun in the same
  process would log into it. MLflow refuses to change a param: a resumed run adds only the keys its run lacks.
- MLflow's store is a local SQLite file by default (`logs/mlflow.db`; MLflow 3 calls the `./mlruns` file store legacy),
  its artifacts beside it (`logs/mlartifacts/<experiment>/`), unless `tracking_uri` (or MLFLOW_TRACKING_URI) names a
  server; one process at a time sets a SQLite store up (`store_lock`: a parallel sweep's jobs start together). The
  files of `checkpoint_dir` (best.ckpt, last.ckpt) are logged as artifacts `checkpoints/<name>` when fit ends,
  failed or not: Lightning's `log_model` sees only ModelCheckpoint's files, and dlf's last.ckpt is LastCheckpoint's.
- W&B runs offline unless the user is logged in (`wandb login`, WANDB_API_KEY) or WANDB_MODE says otherwise: nothing
  leaves the machine unasked; `wandb sync <run dir>/wandb/offline-run-*` uploads a run later.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path

from lightning.pytorch.loggers import MLFlowLogger as LightningMLFlowLogger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import OmegaConf

from dlf.faults import atomic_write_text

RUNS_FILE = "trackers.json"  # {"mlflow": {"run_id", "experiment_id", "tracking_uri"}, "wandb": {"id", "project"}}


def recall(run_dir, tracker: str) -> dict:
    """What `remember` kept for `tracker` in this run dir ({} if nothing)."""
    try:
        return json.loads((Path(run_dir) / RUNS_FILE).read_text()).get(tracker) or {}
    except (OSError, ValueError, AttributeError):
        return {}


def remember(run_dir, tracker: str, info: dict) -> None:
    path = Path(run_dir) / RUNS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[tracker] = info
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def run_name(run_dir) -> str:
    """The run dir's name (`<time>_<pid>`); a multirun job's is `<sweep dir name>/<job dir name>`."""
    p = Path(run_dir)
    return f"{p.parent.name}/{p.name}" if p.parent.parent.name == "multiruns" else p.name


def flat_config(cfg) -> dict:
    """The run's config, resolved where it resolves, without `hydra`, as {"model.net.hidden": [5], ...}."""
    try:
        tree = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - a config built outside Hydra (${hydra:...} unset): its values as written
        tree = OmegaConf.to_container(cfg, resolve=False)
    tree.pop("hydra", None)
    out: dict = {}

    def walk(node: dict, prefix: str) -> None:
        for k, v in node.items():
            if isinstance(v, dict) and v:
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v

    walk(tree, "")
    return out


def store_lock(tracking_uri: str):
    """One process at a time in a SQLite store's set-up: the jobs of a parallel sweep start together, and two of them
    creating a new mlflow.db at once fail ("table _alembic_tmp_<table> already exists"). dlf.faults.sqlite_setup_lock
    (a lock file beside the store, `mlflow.db.lock`); other stores (a server) need none."""
    from dlf.faults import sqlite_setup_lock

    return sqlite_setup_lock(tracking_uri)


def _quiet_mlflow() -> None:
    """MLflow's INFO lines (a new store's tables created, ...) off the console; MLFLOW_LOGGING_LEVEL wins. MLflow sets
    its logger's level when it is imported, so it is imported first."""
    try:
        import mlflow  # noqa: F401
    except ImportError:  # Lightning's constructor says so
        return
    logging.getLogger("mlflow").setLevel(os.environ.get("MLFLOW_LOGGING_LEVEL", "WARNING"))


class MLFlowLogger(LightningMLFlowLogger):
    """Lightning's MLFlowLogger continuing the run dir's MLflow run, its SQLite store's artifacts beside the store, and
    `checkpoint_dir`'s checkpoints logged as artifacts (the module docstring says why)."""

    def __init__(self, run_dir: str, tracking_uri: str | None = None, checkpoint_dir: str | None = None,
                 artifact_location: str | None = None, **kwargs):
        self.run_dir, self.checkpoint_dir = Path(run_dir), checkpoint_dir
        tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///logs/mlflow.db"
        if tracking_uri.startswith("sqlite:///"):  # an absolute path: the same store from any working dir
            db = Path(tracking_uri[len("sqlite:///"):]).resolve()
            db.parent.mkdir(parents=True, exist_ok=True)
            tracking_uri = f"sqlite:///{db}"
            experiment = kwargs.get("experiment_name", "lightning_logs")
            artifact_location = artifact_location or (db.parent / "mlartifacts" / experiment).as_uri()
        known = recall(run_dir, "mlflow")
        self.resumed = bool(known) and known.get("tracking_uri") == tracking_uri and not kwargs.get("run_id")
        if self.resumed:
            kwargs["run_id"] = known["run_id"]
        kwargs.setdefault("run_name", run_name(run_dir))
        _quiet_mlflow()
        with store_lock(tracking_uri):  # Lightning's constructor makes the client, which creates a new store's tables
            super().__init__(tracking_uri=tracking_uri, artifact_location=artifact_location, **kwargs)
        self._logged_files: dict[str, int] = {}

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._initialized:
            return self._mlflow_client
        from mlflow.exceptions import MlflowException

        if self.resumed:
            try:
                self._mlflow_client.get_run(self._run_id)
            except MlflowException:  # the store no longer has it (a new mlflow.db): a new run
                self._run_id, self.resumed = None, False
        try:
            with store_lock(self._tracking_uri):
                client = super().experiment  # finds or creates the experiment, then the run
        except MlflowException:  # another job created the experiment between the look-up and the creation: found now
            client = super().experiment
        if self.resumed:
            client.update_run(self._run_id, status="RUNNING")
        remember(self.run_dir, "mlflow", {"run_id": self._run_id, "experiment_id": self._experiment_id,
                                          "tracking_uri": self._tracking_uri})
        return client

    @rank_zero_only
    def log_hyperparams(self, params) -> None:
        params = dict(params)
        if self.resumed:  # MLflow refuses to change a logged param: keep the run's, add the new keys
            have = self.experiment.get_run(self.run_id).data.params
            params = {k: v for k, v in params.items() if k not in have}
        if params:
            super().log_hyperparams(params)

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        if self._initialized and self.checkpoint_dir:
            for f in sorted(Path(self.checkpoint_dir).glob("*.ckpt")):
                stamp = f.stat().st_mtime_ns
                if self._logged_files.get(f.name) != stamp:  # new or rewritten since it was last logged
                    self.experiment.log_artifact(self.run_id, str(f), "checkpoints")
                    self._logged_files[f.name] = stamp
        super().finalize(status)


def wandb_mode() -> str | None:
    """None (W&B decides: WANDB_MODE, else online) where WANDB_MODE is set or the user is logged in, else "offline".
    Logged in: WANDB_API_KEY, or a key for W&B's host in ~/.netrc (or $NETRC), where `wandb login` writes it."""
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return None
    import netrc
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return None if netrc.netrc(os.environ.get("NETRC")).authenticators(host) else "offline"
    except (OSError, netrc.NetrcParseError):
        return "offline"


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger offline unless the user is logged in, continuing the run dir's W&B run, and finished
    at the end of the job (`finish`; the module docstring says why). Its files go to `<run dir>/wandb/`."""

    def __init__(self, run_dir: str, mode: str | None = None, **kwargs):
        self.run_dir = Path(run_dir)
        known = recall(run_dir, "wandb")
        if known.get("id") and not (kwargs.get("id") or kwargs.get("version")):
            kwargs["id"] = known["id"]  # Lightning asks wandb.init(resume="allow"): the same run goes on
        kwargs.setdefault("name", run_name(run_dir))
        kwargs.setdefault("save_dir", str(run_dir))
        super().__init__(mode=mode or wandb_mode(), **kwargs)
        self._remembered = False

    @property
    @rank_zero_experiment
    def experiment(self):
        run = super().experiment
        if not self._remembered and getattr(run, "id", None):
            remember(self.run_dir, "wandb", {"id": run.id, "project": run.project})
            self._remembered = True
        return run

    @rank_zero_only
    def finish(self, failed: bool = False) -> None:
        """End this job's W&B run (exit code 1 if the job failed), so the next job starts its own."""
        if self._experiment is not None:
            self._experiment.finish(exit_code=1 if failed else 0)
            self._experiment, self._remembered = None, False


@contextmanager
def tracked(trainer, cfg):
    """Around a run's fit and test: the flattened config as each tracker's params first, the W&B runs finished last
    (failed if the block raised)."""
    trackers = [lg for lg in trainer.loggers if isinstance(lg, (MLFlowLogger, WandbLogger))]
    if trackers:
        params = flat_config(cfg)
        for lg in trackers:
            lg.log_hyperparams(params)
    failed = True
    try:
        yield
        failed = False
    finally:
        for lg in trackers:
            if isinstance(lg, WandbLogger):
                lg.finish(failed)
