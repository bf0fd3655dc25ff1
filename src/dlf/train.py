"""The Hydra entry point: compose the config, instantiate data → model → callbacks, loggers, Trainer, then fit and test.

`python train.py model=lstm optimizer=rmsprop` (from a clone) and `dlf-train ...` (installed) both land in `cli()`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlf.errors import DlfError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
GROUPS = ("data", "model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "paths", "experiment", "debug")

# ${dlf_pid:} in the run-dir pattern keeps two runs started in the same second apart.
OmegaConf.register_new_resolver("dlf_pid", lambda: str(os.getpid()), replace=True)


def options(group: str) -> list[str]:
    """The option names of a config group (files in configs/<group>/)."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _positive(value, name: str, fix: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise DlfError(f"{name}={value!r} must be a positive number: {fix}")


def validate(cfg: DictConfig) -> None:
    """Start-up checks that need no data or model: every missing value, learning rate, batch size, accelerator."""
    from omegaconf.errors import MissingMandatoryValue

    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as e:
        key = getattr(e, "full_key", None) or str(e)
        raise DlfError(f"missing required value '{key}': set it on the command line, e.g. {key}=<value>") from None
    if cfg.get("optimizer"):
        _positive(cfg.optimizer.get("lr"), "optimizer.lr", "set e.g. optimizer.lr=0.01")
    if cfg.get("data") and "batch_size" in cfg.data:
        bs = cfg.data.batch_size
        if isinstance(bs, bool) or not isinstance(bs, int) or bs <= 0:
            raise DlfError(f"data.batch_size={bs!r} must be a positive integer: set e.g. data.batch_size=64")
    accel = str(cfg.trainer.get("accelerator", "auto")).lower()
    if accel in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise DlfError("trainer=gpu asks for a CUDA GPU but none is visible here (torch.cuda.is_available() is "
                           "False): use trainer=cpu, or trainer=default to pick the GPU only when there is one")


def _instantiate_all(section) -> list:
    from hydra.utils import instantiate

    if not section:
        return []
    return [instantiate(c) for c in section.values() if isinstance(c, DictConfig) and "_target_" in c]


def run(cfg: DictConfig) -> dict:
    """Train (and test) as `cfg` says; returns the final metrics. Raises DlfError for bad input."""
    import lightning as L
    import torch
    from hydra.utils import instantiate

    validate(cfg)
    torch.set_float32_matmul_precision("high")
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.data)
    facts = datamodule.prepare()
    optimizer = instantiate(cfg.optimizer) if cfg.get("optimizer") else None
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    # partial first, then call: hydra would turn the facts dataclass into a DictConfig if passed through instantiate
    model = instantiate(cfg.model, _partial_=True)(facts=facts, optimizer=optimizer, scheduler=scheduler)

    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers if loggers else False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    if cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test", True):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if cfg.get("train", True) and best:
            test_metrics = trainer.test(model, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=False)
        else:
            test_metrics = trainer.test(model, datamodule=datamodule, verbose=False)
        for d in test_metrics:
            metrics.update({k: float(v) for k, v in d.items()})
    tests = {k: round(v, 4) for k, v in metrics.items() if k.startswith("test/")}
    if tests:
        print("Test: " + ", ".join(f"{k}={v}" for k, v in sorted(tests.items())))
    print(f"Run dir: {cfg.paths.output_dir}   (tensorboard --logdir {cfg.paths.output_dir})")
    return metrics


def _one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return msg[0] if msg else type(e).__name__


def _root_cause(e: BaseException) -> BaseException:
    """The DlfError behind a chain of wrappers (hydra's InstantiationException), else the innermost cause."""
    seen = e
    while seen is not None:
        if isinstance(seen, DlfError):
            return seen
        seen = seen.__cause__ or seen.__context__
    while e.__cause__ is not None:
        e = e.__cause__
    return e


def _fail(message: str, code: int = 2):
    print(f"dlf: error: {message}", file=sys.stderr)
    sys.exit(code)


def _task(cfg: DictConfig) -> None:
    """Hydra's task function: run, turning any error into one line unless HYDRA_FULL_ERROR=1."""
    try:
        run(cfg)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as e:  # noqa: BLE001 - one line, not a traceback
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        cause = _root_cause(e)
        if isinstance(cause, DlfError):
            _fail(str(cause))
        _fail(f"{type(cause).__name__}: {_one_line(cause)} (set HYDRA_FULL_ERROR=1 for the full traceback)", 1)


def precheck(overrides: list[str]) -> None:
    """Check the command line before Hydra starts: unknown group options and other composition errors give one line."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    args = [a for a in overrides if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(args)
    except HydraException as e:
        raise DlfError(f"cannot read the command line: {_one_line(e)}") from None
    first = []
    for o in parsed:
        key = o.key_or_group
        if key.startswith("hydra"):
            continue
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        if key in GROUPS and not o.is_delete():
            known = options(key)
            for v in values:
                if v not in known and v != "null":
                    raise DlfError(f"unknown {key} '{v}': choose one of {', '.join(known)} (e.g. {key}={known[0]})")
        if o.is_sweep_override():
            first.append(f"{o.get_key_element()}={values[0]}")
        else:
            first.append(o.input_line)
    try:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            compose("train", overrides=first)
    except (HydraException, OmegaConfBaseException) as e:
        raise DlfError(f"bad configuration: {_one_line(e)}") from None


def cli() -> None:
    """Console entry point (`dlf-train`, `python train.py`)."""
    import hydra

    if not CONFIG_DIR.is_dir():
        _fail(f"config dir {CONFIG_DIR} not found: install dlf from a clone with `pip install -e .`")
    try:
        precheck(sys.argv[1:])
    except DlfError as e:
        _fail(str(e))
    hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")(_task)()


if __name__ == "__main__":
    cli()
