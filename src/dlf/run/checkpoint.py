"""Checkpoints that survive kills and load safely.

- `AtomicCheckpointIO`: Lightning writes every checkpoint through it: to a temporary file in the same folder, flushed to
  disk, then `os.replace`d over the old one. A process killed mid-write leaves the previous checkpoint intact.
- `read_checkpoint`: `torch.load(..., weights_only=True)` with one-line errors (missing, truncated, not a checkpoint).
- `resolve_ckpt_path`: `ckpt_path=last` -> the newest `logs/<task_name>/runs/*/checkpoints/last.ckpt`.
- `check_compatible`: a checkpoint of another model family, or with other layer sizes, is refused in one line.
- `locate_run`: (run dir, checkpoint) from a run dir or a checkpoint file in it, for dlf-sample and dlf-generate.
- `building_from`: Hydra's errors while building from a saved run config (a tampered `_target_` that Hydra's target
  policy refuses, a missing class) become one DlfError line.
- `saved_config`: a run dir's `.hydra/config.yaml`, with the keys older dlf versions wrote moved to where they live now.
- `load_system`: rebuild a trained system from its run dir (config + data facts) for sampling/generation scripts.

Every checkpoint dlf writes carries a `dlf` entry (see `dlf.callbacks.resilience.RunGuard`): the model config it was
trained with, the data name, the run dir, and the RNG states, so the checks above need no unpickling of code.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlf.errors import DlfError
from dlf.faults import atomic_write, write_failed
from dlf.systems.saved import run_dir_of, saved_config  # noqa: F401  (here since dlf 0.1: tools and tests name them)


def _torch_save(obj: Any, f) -> None:
    """Serialize in memory, then write the bytes: a failed write raises the kernel's OSError (ENOSPC, EDQUOT, EFBIG)
    itself, not the RuntimeError torch's zip writer turns it into."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    f.write(buf.getbuffer())


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save `obj` to `path` so that `path` is either the old file or the complete new one, never a torn mix.
    A failed write (disk full, quota, `ulimit -f`) removes its temporary file and raises one DlfError line naming
    `path` and the cause; the previous file is untouched."""
    path = Path(path)
    try:
        with atomic_write(path) as f:
            _torch_save(obj, f)
    except OSError as e:
        kept = f"; the previous {path.name} is kept" if path.exists() else ""
        raise write_failed(path, e, kept) from e


def _atomic_checkpoint_io() -> type:
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        """Lightning CheckpointIO: atomic writes (temp file + os.replace) and weights_only=True loads."""

        def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
            atomic_save(checkpoint, path)

        def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
            return read_checkpoint(path, map_location=map_location)

    AtomicCheckpointIO.__module__, AtomicCheckpointIO.__qualname__ = __name__, "AtomicCheckpointIO"
    return AtomicCheckpointIO


def __getattr__(name: str):
    """`AtomicCheckpointIO` is made on first use: the start-up checks (resolve_ckpt_path, ...) import this module, and
    must not import Lightning (and torch) for a config error."""
    if name == "AtomicCheckpointIO":
        globals()[name] = cls = _atomic_checkpoint_io()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _damage(path: Path) -> str | None:
    """What is wrong with a checkpoint file's bytes, or None. torch files are zip archives with a CRC-32 per member:
    a truncated or overwritten file fails to open, a changed byte fails its member's CRC (torch.load itself does not
    check them and would load the changed weights)."""
    import zipfile

    if path.stat().st_size == 0:
        return "it is empty"
    with open(path, "rb") as f:
        head = f.read(4)
        if head == b"\0" * len(head):
            return "it is all zero bytes" if not any(f.read()) else "it starts with zero bytes, not a checkpoint header"
    if head != b"PK\x03\x04":
        return None  # not a zip: let torch.load say whether it is a legacy torch file or something else
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except Exception as e:  # noqa: BLE001 - BadZipFile, a damaged directory decoded as text, ...
        return f"it is truncated, or its zip index is damaged ({type(e).__name__})"
    return f"its bytes changed: {bad} fails its CRC-32 check" if bad else None


def read_checkpoint(path: str | Path, map_location=None, mmap: bool = False) -> dict:
    """Load a checkpoint with torch.load(weights_only=True) after checking its bytes; bad files give one DlfError line
    that says what is wrong, which file, and what to do. `mmap=True` maps the tensors' bytes instead of reading them:
    for the checks that read a checkpoint's configs, shapes and callback states (Lightning's fit reads the tensors)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DlfError(f"ckpt_path={path} does not exist: pass an existing .ckpt file, or ckpt_path=last for the newest "
                       "run of this task")
    damage = _damage(path)
    if damage:
        raise DlfError(f"checkpoint {path} is damaged ({damage}) and was left as it is: resume from another copy, "
                       "e.g. best.ckpt beside it, or start again without ckpt_path")
    try:
        ckpt = torch.load(path, map_location=map_location or "cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # noqa: BLE001 - truncated zip, pickle with code, not a torch file, ...
        text = str(e)
        if "Unsupported global" in text or "GLOBAL" in text:
            why = "it holds pickled Python objects, which torch.load(weights_only=True) refuses to run"
        else:
            why = f"not a complete PyTorch file: truncated or another format; {type(e).__name__}"
        raise DlfError(f"ckpt_path={path} is not a readable dlf checkpoint ({why}): pass a .ckpt written by dlf "
                       "(checkpoints/last.ckpt or best.ckpt)") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise DlfError(f"ckpt_path={path} holds no model state_dict: pass a .ckpt written by dlf")
    return ckpt


def resolve_ckpt_path(value: str, task_name: str, log_dir: str | Path) -> Path:
    """`last` -> the newest last.ckpt among logs/<task_name>/runs/*/checkpoints/; a path -> that path (checked)."""
    if str(value) != "last":
        p = Path(value).expanduser()
        if not p.is_file():
            hint = " (it is a folder: point at its checkpoints/last.ckpt)" if p.is_dir() else ""
            raise DlfError(f"ckpt_path={value} does not exist{hint}: pass an existing .ckpt file, or ckpt_path=last "
                           "for the newest run of this task")
        return p.resolve()
    runs = Path(log_dir) / task_name / "runs"
    found = sorted(runs.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise DlfError(f"ckpt_path=last found no checkpoint under {runs}/*/checkpoints/last.ckpt (task_name="
                       f"{task_name}): run the task first, or pass ckpt_path=<path to a .ckpt>")
    return found[-1].resolve()


def locate_run(path: str | Path, ckpt: str = "best") -> tuple[Path, Path]:
    """(run dir, checkpoint) from a run dir (its checkpoints/<ckpt>.ckpt; best falls back to last) or a checkpoint
    file inside <run dir>/checkpoints/ (docs/using.md's `dlf-generate logs/gan/runs/<run>/checkpoints/best.ckpt`)."""
    p = Path(path).expanduser()
    if p.is_file():
        run = run_dir_of(p)
        if run is None or not (run / ".hydra" / "config.yaml").is_file():
            raise DlfError(f"{path} is not inside a dlf run dir (<run dir>/checkpoints/*.ckpt next to <run dir>/.hydra/"
                           "config.yaml): pass a run dir or a checkpoint from logs/<task>/runs/<run>/checkpoints/")
        return run, p
    if not p.is_dir():
        raise DlfError(f"{path} does not exist: pass a run dir (logs/<task>/runs/<run>) or a checkpoint file in its "
                       "checkpoints/")
    if not (p / ".hydra" / "config.yaml").is_file():
        raise DlfError(f"{p / '.hydra' / 'config.yaml'} not found: pass the run dir of a dlf run "
                       "(logs/<task>/runs/<run>) or a checkpoint file in its checkpoints/")
    names = ["best", "last"] if ckpt == "best" else [ckpt]
    for name in names:
        if (p / "checkpoints" / f"{name}.ckpt").is_file():
            return p, p / "checkpoints" / f"{name}.ckpt"
    raise DlfError(f"no checkpoints/{' or '.join(n + '.ckpt' for n in names)} under {p}: pass a run that wrote "
                   "checkpoints (debug=fast writes none), or a checkpoint file")


@contextmanager
def building_from(config_path: str | Path):
    """Turn Hydra's errors while instantiating a saved run config into one DlfError line. Hydra's target policy
    refuses a target such as shutil.rmtree before calling it, so a tampered config ends here with nothing run."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        yield
    except (HydraException, OmegaConfBaseException) as e:
        cause = e
        while cause is not None:  # a dlf check inside a constructor keeps its own line
            if isinstance(cause, DlfError):
                raise cause from None
            cause = cause.__cause__
        text = str(e).strip()
        first = text.splitlines()[0] if text else type(e).__name__
        key = re.search(r"full_key: (\S+)", text)
        raise DlfError(f"{config_path} cannot be built{' at ' + key.group(1) if key else ''}: {first}: pass the run "
                       "dir of a dlf run with its .hydra/config.yaml as dlf wrote it") from None


# Model keys that say where or how much to evaluate, not what the weights are: a checkpoint whose run set them otherwise
# (or an older dlf whose default differed, e.g. the GAN scorer's cache path) still fits.
NOT_ARCHITECTURE = frozenset({"classifier_cache", "n_eval", "eval_seed", "print_summary", "lr_table", "adam_betas",
                              "compile"})


def _first_difference(a: Any, b: Any, prefix: str = "model") -> str | None:
    """The first model key whose value differs between the checkpoint's config `a` and this run's `b`. Keys only one
    side has are skipped: a key added later (with its default) or dropped since must not make old checkpoints unusable;
    the weights' shapes are checked separately (`check_weights_fit`, Lightning's strict load)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) & set(b), key=str):
            if k in NOT_ARCHITECTURE:
                continue
            d = _first_difference(a[k], b[k], f"{prefix}.{k}")
            if d:
                return d
        return None
    return None if a == b else f"{prefix}={b!r} here but {a!r} in the checkpoint"


def check_compatible(ckpt: dict, model_cfg: dict, path: str | Path, overrides_hint: str = "") -> None:
    """Refuse, in one line, a checkpoint trained with another model family or other layer sizes than `model_cfg`."""
    meta = ckpt.get("dlf") or {}
    theirs = meta.get("model")
    if theirs is None:
        return  # not written by dlf's RunGuard: Lightning's strict load still checks every shape
    fix = f"resume with the command that made it{overrides_hint}" if overrides_hint else "pass the matching model=..."
    if theirs.get("_target_") != model_cfg.get("_target_"):
        raise DlfError(f"ckpt_path={path} is a checkpoint of {theirs.get('_target_')} (task {meta.get('task_name')}), "
                       f"not of {model_cfg.get('_target_')}: {fix}")
    diff = _first_difference(theirs, model_cfg)
    if diff:
        raise DlfError(f"ckpt_path={path} does not match this model ({diff}): {fix}")


def check_weights_fit(system, state_dict: dict, name: str) -> None:
    """A checkpoint (`name`: how the user gave it) whose tensors do not fit `system` (other layer sizes, another
    model): one line. Buffers that only count (BatchNorm's num_batches_tracked) may be missing."""
    own = system.state_dict()
    for k, v in state_dict.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            raise DlfError(f"{name} does not fit this model: {k} has shape {tuple(v.shape)} in the checkpoint but "
                           f"{tuple(own[k].shape)} here: resume with the model options it was trained with")
    missing = [k for k in own if k not in state_dict and not k.endswith(("_tracked", "num_batches_tracked"))]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        raise DlfError(f"{name} does not fit this model (missing {missing[:2]}, unexpected {unexpected[:2]}): pass a "
                       "checkpoint of the same model")


def recorded_score(ckpt: dict, monitor) -> float | None:
    """The last `monitor` value a ModelCheckpoint watching it recorded in `ckpt` (its `current_score`; Lightning does
    not restore it). A run resumed from a checkpoint written at its last step trains and validates nothing, so this is
    its final value."""
    for state in (ckpt.get("callbacks") or {}).values():
        if isinstance(state, dict) and state.get("monitor") == monitor and state.get("current_score") is not None:
            return float(state["current_score"])
    return None


@dataclass
class Loaded:
    """A trained system as `load_run` rebuilt it (eval mode), the data module it was built for (None where the
    checkpoint carries the data's facts and `data` was not asked for), its run dir and checkpoint file."""

    system: Any
    datamodule: Any
    run_dir: Path
    ckpt_path: Path


def stored_facts(state: dict):
    """The data's facts a checkpoint carries (its hyper-parameters; a dlf 0.1 sequence model's dlf_facts), or None."""
    from dlf.data.base import DataFacts

    facts = (state.get("hyper_parameters") or {}).get("facts") or state.get("dlf_facts")
    return DataFacts.from_dict(facts) if facts else None


def load_run(path: str | Path, ckpt: str = "best", map_location: str = "cpu", data: bool = False) -> Loaded:
    """The loader of a run dir (dlf-generate, dlf-sample, notebooks): a run dir (its checkpoints/<ckpt>.ckpt; best
    falls back to last) or a checkpoint file in one. Reads <run dir>/.hydra/config.yaml in today's layout, checks the
    checkpoint against it, takes the data's facts from the checkpoint or else prepares the data (`data=True`: always,
    for a caller that needs the data module), builds the system (dlf.run.build) and loads the weights
    (weights_only=True)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf, open_dict

    from dlf.run.build import build_system

    run_dir, ckpt_path = locate_run(path, ckpt)
    state = read_checkpoint(ckpt_path, map_location=map_location)
    cfg = saved_config(run_dir)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)  # the saved value is an interpolation only Hydra can resolve
    facts, datamodule = stored_facts(state), None
    with building_from(run_dir / ".hydra" / "config.yaml"):  # a target Hydra refuses: one line, nothing run
        if facts is None or data:
            datamodule = instantiate(cfg.data)
            facts = datamodule.prepare()
        system = build_system(cfg, facts)
    check_compatible(state, OmegaConf.to_container(cfg.model, resolve=False), ckpt_path)
    check_weights_fit(system, state["state_dict"], str(ckpt_path))
    system.load_state_dict(state["state_dict"], strict=False)
    return Loaded(system.eval(), datamodule, run_dir, ckpt_path)


def load_system(path: str | Path, map_location: str = "cpu", ckpt: str = "best"):
    """The trained system of a dlf run dir or checkpoint file, in eval mode (`load_run(...).system`)."""
    return load_run(path, ckpt, map_location).system


def zoo_checkpoint(name: str) -> Path | None:
    """The checkpoint file a zoo model's name stands for (its sha256 checked: dlf.zoo.weights_path), or None for a
    name the zoo does not know. The one import of dlf.zoo from this layer (tests/test_layers.py DOORS)."""
    from dlf.zoo import store

    return store.weights_path(name) if name in store.list_models() else None


def checkpoint_of(source: str | Path) -> Path:
    """The checkpoint `dlf.load(source)` reads: the file itself, a run dir's checkpoints/best.ckpt (else last.ckpt),
    or a zoo model's; anything else is one line naming what was tried."""
    p = Path(source).expanduser()
    if p.is_file():
        return p
    if p.is_dir() and (p / "model.safetensors").is_file():
        return p
    if p.is_dir():
        for name in ("best", "last"):
            if (p / "checkpoints" / f"{name}.ckpt").is_file():
                return p / "checkpoints" / f"{name}.ckpt"
        raise DlfError(f"dlf.load({str(source)!r}): the folder {p.resolve()} has no checkpoints/best.ckpt nor "
                       "checkpoints/last.ckpt: pass the run dir of a run that wrote checkpoints (debug=fast writes "
                       "none), or a .ckpt file")
    found = zoo_checkpoint(str(source))
    if found is not None:
        return found
    raise DlfError(f"dlf.load({str(source)!r}): tried a run dir or checkpoint file at {p.resolve()} (none there) and a "
                   "zoo model of that name (dlf-zoo list names them): pass a run dir (logs/<task>/runs/<run>), a .ckpt "
                   "file, or a zoo model's name")


def load(source: str | Path, device: str = "cpu"):
    """`dlf.load`: the trained system of a run dir, a checkpoint file or a zoo model, in eval mode on `device`, its
    family read from the checkpoint (System.load_from_checkpoint); `model.predict(raw)` takes the data's own units."""
    from dlf.systems.base import System

    path = checkpoint_of(source)
    if path.is_dir():  # a folder `dlf-zoo export` wrote: config.json + model.safetensors
        return from_export(path).to(device).eval()
    damage = _damage(path)
    if damage:
        raise DlfError(f"dlf.load({str(source)!r}): checkpoint {path} is damaged ({damage}): load another copy, "
                       "e.g. last.ckpt beside it")
    return System.load_from_checkpoint(path, map_location=device)


def from_export(folder: Path):
    """The system a `dlf-zoo export` folder holds: built from config.json's hyper-parameters, its weights read from
    model.safetensors (no pickle anywhere). A folder that lacks either is one line."""
    import json

    from safetensors.torch import load_file

    from dlf.systems.base import System
    from dlf.systems.saved import constructor_args, system_class

    folder = Path(folder)
    try:
        hparams = json.loads((folder / "config.json").read_text())["hyper_parameters"]
        state = load_file(str(folder / "model.safetensors"))
    except Exception as e:  # noqa: BLE001 - missing file, bad JSON, damaged safetensors header
        raise DlfError(f"dlf.load({str(folder)!r}): not a readable dlf-zoo export ({type(e).__name__}: {e}): pass a "
                       "folder `dlf-zoo export NAME DIR` wrote (config.json, model.safetensors)") from None
    target = system_class(hparams.get("_target_"), System, folder)
    system = target(**constructor_args(hparams, folder))
    system.load_state_dict(state, strict=True)
    system.save_hyperparameters(hparams, logger=False)
    return system
