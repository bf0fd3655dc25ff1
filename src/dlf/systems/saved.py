"""What a checkpoint needs to rebuild its system with Lightning's `load_from_checkpoint`: the constructor's arguments as
plain types (so loads stay `weights_only=True`: nothing is pickled).

- `stored`: the family and its arguments for a checkpoint file: its `hyper_parameters` (dlf.run.build saves them in
  every run: the model config, resolved, with the net's config as Hydra's `_target_` dict, and the data's facts, the
  normalisation statistics included); a checkpoint of dlf 0.1 holds none, and they come from its run dir's
  `.hydra/config.yaml` (the model) and the checkpoint's `dlf_facts` or the run's data module (the facts).
- `constructor_args`: those plain values back into what the constructor takes: each `_target_` dict -> the partial
  Hydra makes of it (as when the run built it), the facts -> DataFacts.
- `saved_config`, `run_dir_of`: a run dir's config in today's layout, and the run dir a checkpoint sits in (also used
  by dlf.run.checkpoint, which re-exports them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlf.errors import DlfError

# Nothing heavy at import: dlf.run.checkpoint, which the start-up checks import before torch, re-exports two names.


def run_dir_of(ckpt: Path) -> Path | None:
    """The run dir a checkpoint belongs to (<run dir>/checkpoints/x.ckpt with <run dir>/.hydra), else None."""
    ckpt = Path(ckpt).resolve()
    run = ckpt.parent.parent
    if ckpt.parent.name == "checkpoints" and (run / ".hydra").is_dir():
        return run
    return None


def saved_config(run_dir: str | Path):
    """The config a run dir records (<run dir>/.hydra/config.yaml), in today's layout. Runs of dlf 0.1 (before the
    learning rates moved into the model config) wrote the model's rates as top-level `lr_table` and `adam_betas`: they
    move to `model.lr_table` and `model.adam_betas`; their GAN's `model.lr_decay` is dropped (a schedule only matters
    for training, and a resumed run composes its config afresh: model=gan selects scheduler=linear)."""
    from omegaconf import OmegaConf, open_dict

    cfg = OmegaConf.load(Path(run_dir) / ".hydra" / "config.yaml")
    model = cfg.get("model")
    if model is not None:
        with open_dict(cfg):
            for key in ("lr_table", "adam_betas"):
                if key in cfg:
                    value = cfg.pop(key)
                    if key not in model:
                        model[key] = value
            model.pop("lr_decay", None)
    return cfg


def peek(path) -> dict:
    """A checkpoint's entries, its tensors memory-mapped rather than read (weights_only=True); one line if unreadable."""
    import torch

    if not Path(path).is_file():
        raise DlfError(f"checkpoint {path} does not exist: pass a .ckpt file (a run's checkpoints/best.ckpt or last.ckpt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - not a torch file, truncated, pickled code
        raise DlfError(f"{path} is not a readable checkpoint ({type(e).__name__}): pass a .ckpt written by dlf") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise DlfError(f"{path} holds no model state_dict: pass a .ckpt written by dlf")
    return ckpt


def system_class(target: str | None, cls: type, path) -> type:
    """The class `target` names (a subclass of `cls`, the class load_from_checkpoint was called on), else one line."""
    if not target:
        return cls
    from hydra.utils import get_class

    try:
        found = get_class(target)
    except Exception as e:  # noqa: BLE001 - a module or class that no longer exists
        raise DlfError(f"{path} is a checkpoint of {target}, which cannot be imported ({type(e).__name__}): load it "
                       "with the dlf (or your code) that wrote it") from None
    if not (isinstance(found, type) and issubclass(found, cls)):
        raise DlfError(f"{path} is a checkpoint of {target}, not of {cls.__module__}.{cls.__qualname__}: load it with "
                       f"{target.rpartition('.')[2]}.load_from_checkpoint, or dlf.load")
    return found


def stored(cls: type, path, given: dict, hparams_file=None) -> tuple[type, dict]:
    """(the class to build, the constructor's arguments as plain types) of the checkpoint at `path`; `given`: the
    arguments the caller passes (they win). With Lightning's own `hparams_file`, or a file-like `path`, Lightning's
    behaviour: `cls`, nothing stored."""
    if hparams_file is not None or not isinstance(path, (str, Path)):
        return cls, {}
    ckpt = peek(path)
    hparams = dict(ckpt.get("hyper_parameters") or {})
    if hparams:
        return system_class(hparams.get("_target_"), cls, path), hparams
    return old_run(cls, path, ckpt, given)


def old_run(cls: type, path, ckpt: dict, given: dict) -> tuple[type, dict]:
    """A checkpoint without hyper-parameters (dlf 0.1): the model from its run dir's .hydra/config.yaml, the facts
    from `given`, the checkpoint's dlf_facts (sequence models), or the run's data module (prepared here)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf, open_dict

    from dlf.data.base import DataFacts

    run = run_dir_of(Path(path))
    if run is None or not (run / ".hydra" / "config.yaml").is_file():
        if "net" in given and "facts" in given:
            return cls, {}
        raise DlfError(f"{path} holds no hyper-parameters (a checkpoint of dlf 0.1) and is not in its run dir "
                       "(<run dir>/checkpoints/, beside <run dir>/.hydra/config.yaml, where they are read): load it "
                       "from its run dir, or pass net= and facts=")
    cfg = saved_config(run)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run)  # the saved value is an interpolation only Hydra can resolve
    model = OmegaConf.to_container(cfg.model, resolve=True)
    target = system_class(model.get("_target_"), cls, path)
    facts = given.get("facts") or ckpt.get("dlf_facts") or instantiate(cfg.data).prepare()
    facts = facts.as_dict() if isinstance(facts, DataFacts) else facts
    keys = set(getattr(target, "CONFIG_KEYS", ()))
    return target, {**{k: v for k, v in model.items() if k not in keys}, "facts": facts}


def constructor_args(hparams: dict, path="the checkpoint") -> dict[str, Any]:
    """Stored hyper-parameters -> the constructor's keyword arguments: a `_target_` dict (the net's config, a GAN's
    d_optimizer) becomes the partial Hydra makes of it, the facts a DataFacts; `_target_` itself is left out. A
    target Hydra refuses (a tampered checkpoint naming e.g. shutil.rmtree) is one line, with nothing run."""
    from hydra.errors import HydraException
    from hydra.utils import instantiate

    from dlf.data.base import DataFacts

    args = {}
    for key, value in hparams.items():
        if key == "_target_":
            continue
        if key == "facts" and isinstance(value, dict):
            value = DataFacts.from_dict(value)
        elif isinstance(value, dict) and "_target_" in value:
            try:
                value = instantiate(value, _partial_=True)
            except HydraException as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise DlfError(f"{path} cannot be built at {key}: {first}: load a checkpoint as dlf wrote it") from None
        args[key] = value
    return args
