"""Checkpoints that survive kills and load safely.

- `AtomicCheckpointIO`: Lightning writes every checkpoint through it: to a temporary file in the same folder, flushed to
  disk, then `os.replace`d over the old one. A process killed mid-write leaves the previous checkpoint intact.
- `read_checkpoint`: `torch.load(..., weights_only=True)` with one-line errors (missing, truncated, not a checkpoint).
- `resolve_ckpt_path`: `ckpt_path=last` -> the newest `logs/<task_name>/runs/*/checkpoints/last.ckpt`.
- `check_compatible`: a checkpoint of another model family, or with other layer sizes, is refused in one line.
- `locate_run`: (run dir, checkpoint) from a run dir or a checkpoint file in it, for dlf-sample and dlf-generate.
- `building_from`: Hydra's errors while building from a saved run config (a tampered `_target_` that Hydra's target
  policy refuses, a missing class) become one DlfError line.
- `load_system`: rebuild a trained system from its run dir (config + data facts) for sampling/generation scripts.

Every checkpoint dlf writes carries a `dlf` entry (see `dlf.callbacks.resilience.RunGuard`): the model config it was
trained with, the data name, the run dir, and the RNG states, so the checks above need no unpickling of code.
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dlf.errors import DlfError
from dlf.faults import write_failed


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
    path.parent.mkdir(parents=True, exist_ok=True)
    # .<name>.<pid>.<random>.tmp: the pid tells a later run whether the writer is gone (dlf.faults.remove_stale_temps)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            _torch_save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX (same file system)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            kept = f"; the previous {path.name} is kept" if path.exists() else ""
            raise write_failed(path, e, kept) from e
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


def read_checkpoint(path: str | Path, map_location=None) -> dict:
    """Load a checkpoint with torch.load(weights_only=True) after checking its bytes; bad files give one DlfError line
    that says what is wrong, which file, and what to do."""
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


def locate_run(path: str | Path, ckpt: str = "best") -> tuple[Path, Path]:
    """(run dir, checkpoint) from a run dir (its checkpoints/<ckpt>.ckpt; best falls back to last) or a checkpoint
    file inside <run dir>/checkpoints/ (the README's `dlf-generate logs/gan/runs/<run>/checkpoints/best.ckpt`)."""
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
NOT_ARCHITECTURE = frozenset({"classifier_cache", "n_eval", "eval_seed", "print_summary", "lr_table", "compile"})


def _first_difference(a: Any, b: Any, prefix: str = "model") -> str | None:
    """The first model key whose value differs between the checkpoint's config `a` and this run's `b`. Keys only one
    side has are skipped: a key added later (with its default) or dropped since must not make old checkpoints unusable;
    the weights' shapes are checked separately (`_check_weights_fit`, Lightning's strict load)."""
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


def load_system(path: str | Path, map_location: str = "cpu"):
    """Rebuild the trained system of a dlf checkpoint: reads <run dir>/.hydra/config.yaml, prepares the data (for its
    facts), builds the system and loads the weights with weights_only=True. Returns the system in eval mode."""
    from hydra.utils import instantiate
    from dlf.speed import model_config
    from omegaconf import OmegaConf

    path = Path(path)
    ckpt = read_checkpoint(path, map_location=map_location)
    run = run_dir_of(path)
    if run is None or not (run / ".hydra" / "config.yaml").is_file():
        raise DlfError(f"{path} is not inside a dlf run dir (<run dir>/checkpoints/*.ckpt next to <run dir>/.hydra/"
                       "config.yaml): pass a checkpoint from logs/<task>/runs/<run>/checkpoints/")
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    check_compatible(ckpt, OmegaConf.to_container(cfg.model, resolve=False), path)
    with building_from(run / ".hydra" / "config.yaml"):
        facts = instantiate(cfg.data).prepare()
        system = instantiate(model_config(cfg.model), _partial_=True)(facts=facts)
    missing, unexpected = system.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise DlfError(f"{path} does not fit {cfg.model._target_}: missing {list(missing)[:3]}, unexpected "
                       f"{list(unexpected)[:3]}: pass a checkpoint of this model")
    return system.eval()
