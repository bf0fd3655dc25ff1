"""The Hydra entry point: compose the config, instantiate data → model → callbacks, loggers, Trainer, then fit and test.

`python train.py model=lstm optimizer=rmsprop` (from a clone) and `dlf-train ...` (installed) both land in `cli()`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlf.errors import DlfError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # shipped inside the package (pyproject package-data)
GROUPS = ("data", "model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "paths", "experiment", "debug")

# ${dlf_pid:} in the run-dir pattern keeps two runs started in the same second apart.
OmegaConf.register_new_resolver("dlf_pid", lambda: str(os.getpid()), replace=True)


def options(group: str) -> list[str]:
    """The option names of a config group (files in dlf/configs/<group>/)."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _positive(value, name: str, fix: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise DlfError(f"{name}={value!r} must be a positive number: {fix}")


def validate(cfg: DictConfig) -> None:
    """Start-up checks that need no data or model (and no torch import): missing values, types and ranges of the
    seed, learning rate, batch size, trainer limits, monitor, accelerator. See docs/bad_inputs.md."""
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as e:
        key = getattr(e, "full_key", None) or str(e)
        raise DlfError(f"missing required value '{key}': set it on the command line, e.g. {key}=<value>") from None
    except InterpolationResolutionError as e:
        key = getattr(e, "full_key", None) or "?"
        raise DlfError(f"cannot resolve {key}: {_one_line(e)}: fix the ${{...}} reference") from None
    if cfg.get("optimizer"):
        _positive(cfg.optimizer.get("lr"), "optimizer.lr", "set e.g. optimizer.lr=0.01")
    if cfg.get("data") and "batch_size" in cfg.data:
        bs = cfg.data.batch_size
        if isinstance(bs, bool) or not isinstance(bs, int) or bs <= 0:
            raise DlfError(f"data.batch_size={bs!r} must be a positive integer: set e.g. data.batch_size=64")
    from dlf.checks import validate_more

    validate_more(cfg)
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

    from dlf.callbacks.resilience import RunGuard
    from dlf.checkpoint import AtomicCheckpointIO, check_compatible, read_checkpoint, resolve_ckpt_path

    validate(cfg)
    ckpt_path, ckpt = None, None
    if cfg.get("ckpt_path"):  # read (weights_only=True) and check before anything is built
        ckpt_path = resolve_ckpt_path(str(cfg.ckpt_path), cfg.task_name, cfg.paths.log_dir)
        ckpt = read_checkpoint(ckpt_path)
        check_compatible(ckpt, OmegaConf.to_container(cfg.model, resolve=False), ckpt_path)
    torch.set_float32_matmul_precision("high")
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.data)
    facts = datamodule.prepare()
    optimizer = instantiate(cfg.optimizer) if cfg.get("optimizer") else None
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    # partial first, then call: hydra would turn the facts dataclass into a DictConfig if passed through instantiate
    model = instantiate(cfg.model, _partial_=True)(facts=facts, optimizer=optimizer, scheduler=scheduler)
    if ckpt is not None:
        _check_weights_fit(model, ckpt["state_dict"], ckpt_path)
        del ckpt

    guard = RunGuard(meta={"model": OmegaConf.to_container(cfg.model, resolve=False), "task_name": cfg.task_name,
                           "data": facts.name, "run_dir": str(cfg.paths.output_dir)})
    callbacks = [guard, *_instantiate_all(cfg.get("callbacks"))]
    loggers = _instantiate_all(cfg.get("logger"))
    plugins = list(cfg.trainer.get("plugins") or []) + [AtomicCheckpointIO()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers if loggers else False, plugins=plugins)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    if cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None, weights_only=True)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test", True):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if cfg.get("train", True) and best:
            test_metrics = trainer.test(model, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=False)
        elif ckpt_path:  # train=false ckpt_path=...: evaluate that checkpoint
            test_metrics = trainer.test(model, datamodule=datamodule, ckpt_path=str(ckpt_path), weights_only=True,
                                        verbose=False)
        else:
            test_metrics = trainer.test(model, datamodule=datamodule, verbose=False)
        for d in test_metrics:
            metrics.update({k: float(v) for k, v in d.items()})
    tests = {k: round(v, 4) for k, v in metrics.items() if k.startswith("test/")}
    if tests:
        print("Test: " + ", ".join(f"{k}={v}" for k, v in sorted(tests.items())))
    print(f"Run dir: {cfg.paths.output_dir}   (tensorboard --logdir {cfg.paths.output_dir})")
    return metrics


def _check_weights_fit(model, state_dict: dict, path) -> None:
    """A checkpoint whose tensors do not fit this model (other layer sizes) fails in one line."""
    own = model.state_dict()
    for k, v in state_dict.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            raise DlfError(f"ckpt_path={path} does not fit this model: {k} has shape {tuple(v.shape)} in the "
                           f"checkpoint but {tuple(own[k].shape)} here: resume with the model options it was trained with")
    missing = [k for k in own if k not in state_dict and not k.endswith(("_tracked", "num_batches_tracked"))]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        raise DlfError(f"ckpt_path={path} does not fit this model (missing {missing[:2]}, unexpected {unexpected[:2]}):"
                       " pass a checkpoint of the same model")


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
    from dlf.callbacks.resilience import RunInterrupted

    try:
        run(cfg)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except RunInterrupted as e:
        _fail(str(e), e.code)
    except SystemExit as e:  # Lightning's SIGTERMException (a SystemExit with no code) must not exit 0
        if type(e).__name__ == "SIGTERMException":
            _fail("stopped by SIGTERM at the end of a batch without a checkpoint: resume with ckpt_path=last "
                  "(the newest last.ckpt)", 143)
        raise
    except Exception as e:  # noqa: BLE001 - one line, not a traceback
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        from dlf.faults import explain_write_error  # disk full / quota / ulimit -f: one line naming the file

        cause = explain_write_error(e, cfg.paths.get("output_dir")) or _root_cause(e)
        if isinstance(cause, DlfError):
            _fail(str(cause))
        _fail(f"{type(cause).__name__}: {_one_line(cause)} (set HYDRA_FULL_ERROR=1 for the full traceback)", 1)


def precheck(overrides: list[str]) -> DictConfig:
    """Check the command line before Hydra starts (and before torch is imported): unknown group options, composition
    errors and every check of `validate` give one line. Returns the composed config (run dir not yet known)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    args = [a for a in overrides if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(args)
    except HydraException as e:
        raise DlfError(f"cannot read the command line: {_one_line(e)}: write overrides as key=value (quote values "
                       "with spaces or brackets)") from None
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
            cfg = compose("train", overrides=first)
    except (HydraException, OmegaConfBaseException) as e:
        import re

        m = re.search(r"Could not override '([^']+)'", str(e))
        if m:
            key = m.group(1)
            group = key.split(".")[0]
            where = f" (the keys of {group} are in src/dlf/configs/{group}/)" if group in GROUPS else ""
            raise DlfError(f"unknown option '{key}'{where}: check its spelling (`python train.py --cfg job` prints "
                           f"every key), or add a new key with +{key}=...") from None
        raise DlfError(f"bad configuration: {_one_line(e)}: check the spelling of the option and its value") from None
    from omegaconf import open_dict

    with open_dict(cfg):  # no Hydra run yet: stand in for the run dir so every other value resolves
        cfg.paths.output_dir = "<run dir>"
    validate(cfg)
    return cfg


def _quote(value: str) -> str:
    """A path as a Hydra override value."""
    import re

    return value if re.fullmatch(r"[\w/.\-]+", value) else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resume_args(args: list[str], cfg: DictConfig) -> list[str]:
    """For `ckpt_path=<file>` or `ckpt_path=last`: check the checkpoint (weights_only load, same model) before Hydra
    starts, then point ckpt_path at the file and hydra.run.dir at the checkpoint's own run dir, so the resumed run
    writes its events, checkpoints and plots where the interrupted run left them."""
    from dlf.checkpoint import check_compatible, read_checkpoint, resolve_ckpt_path, run_dir_of

    value = cfg.get("ckpt_path")
    if not value:
        return args
    path = resolve_ckpt_path(str(value), cfg.task_name, cfg.paths.log_dir)
    run = run_dir_of(path)
    hint = ""
    if run is not None and (run / ".hydra" / "overrides.yaml").is_file():
        old = [o for o in OmegaConf.load(run / ".hydra" / "overrides.yaml") if not str(o).startswith("ckpt_path=")]
        hint = f" ({' '.join(map(str, old)) or 'no overrides'})"
    check_compatible(read_checkpoint(path), OmegaConf.to_container(cfg.model, resolve=False), path, hint)
    out = [a for a in args if not a.split("=", 1)[0].lstrip("+~") == "ckpt_path"] + [f"ckpt_path={_quote(str(path))}"]
    multirun = any(a in ("-m", "--multirun") for a in args)
    resuming = cfg.get("train", True)  # train=false only evaluates the checkpoint: a new run dir, the old one untouched
    if run is not None and resuming and not multirun and not any(a.startswith("hydra.run.dir=") for a in args):
        out.append(f"hydra.run.dir={_quote(str(run))}")
    return out


def cli() -> None:
    """Console entry point (`dlf-train`, `python train.py`)."""
    if not CONFIG_DIR.is_dir():
        _fail(f"config dir {CONFIG_DIR} not found: reinstall dlf (`pip install -e .` from a clone, or `pip install dlf`)")
    try:
        cfg = precheck(sys.argv[1:])
        sys.argv[1:] = resume_args(sys.argv[1:], cfg)
    except DlfError as e:
        _fail(str(e))
    except Exception as e:  # noqa: BLE001 - a bug in a check must not hide the one-line contract
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _fail(f"{type(e).__name__}: {_one_line(e)} (set HYDRA_FULL_ERROR=1 for the full traceback)", 1)
    import hydra

    hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")(_task)()


if __name__ == "__main__":
    cli()
