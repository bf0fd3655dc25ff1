"""Checkpoints that survive kills and load safely.

- `AtomicCheckpointIO`: Lightning writes every checkpoint through it: to a temporary file in the same folder, flushed to
  disk, then `os.replace`d over the old one. A process killed mid-write leaves the previous checkpoint intact.
- `read_checkpoint`: `torch.load(..., weights_only=True)` with one-line errors (missing, truncated, not a checkpoint).
- `resolve_ckpt_path`: `ckpt_path=last` -> the newest `logs/<task_name>/runs/*/checkpoints/last.ckpt`.
- `check_compatible`: a checkpoint of another model family, or with other layer sizes, is refused in one line.
- `load_system`: rebuild a trained system from its run dir (config + data facts) for sampling/generation scripts.

Every checkpoint dlf writes carries a `dlf` entry (see `dlf.callbacks.resilience.RunGuard`): the model config it was
trained with, the data name, the run dir, and the RNG states, so the checks above need no unpickling of code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from dlf.errors import DlfError


def _torch_save(obj: Any, f) -> None:
    import torch

    torch.save(obj, f)


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save `obj` to `path` so that `path` is either the old file or the complete new one, never a torn mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            _torch_save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX (same file system)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass


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


def read_checkpoint(path: str | Path, map_location=None) -> dict:
    """Load a checkpoint with torch.load(weights_only=True); bad files give one DlfError line."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DlfError(f"ckpt_path={path} does not exist: pass an existing .ckpt file, or ckpt_path=last for the newest "
                       "run of this task")
    try:
        ckpt = torch.load(path, map_location=map_location or "cpu", weights_only=True)
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


def run_dir_of(ckpt: Path) -> Path | None:
    """The run dir a checkpoint belongs to (<run dir>/checkpoints/x.ckpt with <run dir>/.hydra), else None."""
    ckpt = Path(ckpt).resolve()
    run = ckpt.parent.parent
    if ckpt.parent.name == "checkpoints" and (run / ".hydra").is_dir():
        return run
    return None


def _first_difference(a: Any, b: Any, prefix: str = "model") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            d = _first_difference(a.get(k, "<unset>"), b.get(k, "<unset>"), f"{prefix}.{k}")
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


def load_system(path: str | Path, map_location: str = "cpu"):
    """Rebuild the trained system of a dlf checkpoint: reads <run dir>/.hydra/config.yaml, prepares the data (for its
    facts), builds the system and loads the weights with weights_only=True. Returns the system in eval mode."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    path = Path(path)
    ckpt = read_checkpoint(path, map_location=map_location)
    run = run_dir_of(path)
    if run is None or not (run / ".hydra" / "config.yaml").is_file():
        raise DlfError(f"{path} is not inside a dlf run dir (<run dir>/checkpoints/*.ckpt next to <run dir>/.hydra/"
                       "config.yaml): pass a checkpoint from logs/<task>/runs/<run>/checkpoints/")
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    check_compatible(ckpt, OmegaConf.to_container(cfg.model, resolve=False), path)
    facts = instantiate(cfg.data).prepare()
    system = instantiate(cfg.model, _partial_=True)(facts=facts)
    missing, unexpected = system.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise DlfError(f"{path} does not fit {cfg.model._target_}: missing {list(missing)[:3]}, unexpected "
                       f"{list(unexpected)[:3]}: pass a checkpoint of this model")
    return system.eval()
