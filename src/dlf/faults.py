"""What a failed write or a killed writer leaves, said in one line and cleaned up.

- `write_failed(path, e)`: the DlfError for an OSError while writing `path` (disk full, quota, file-size limit,
  permissions), naming the file, the cause (strerror and errno name) and the fix.
- `explain_write_error(e, run_dir)`: for any exception whose chain holds such an OSError (a TensorBoard event write
  fails in its writer thread and surfaces later, a figure's savefig fails half-way), the same one line. The file is
  the OSError's own `filename`, else the file object or path the failing frame was writing, else the run dir.
- `atomic_write(path)`, `atomic_write_text(path, text)`: every file dlf writes whole (checkpoints, caches, result.json,
  pages, manifests) goes to `.<name>.<pid>.<random>.tmp` beside it, is fsynced and `os.replace`d over it: a reader, a
  second process or a kill mid-write sees the old file or the complete new one, never a torn mix.
- `whole_or_absent(path)`: a figure whose write fails half-way is removed, not left truncated.
- `quiet_writer_threads()`: a TensorBoard writer thread that hits a full disk does not print its own traceback; the
  main thread re-raises the same error at the next write or flush, and dlf reports it in one line.
- `remove_stale_temps(folder)`: temporary checkpoint files (`.<name>.<pid>.<random>.tmp`, see
  `atomic_write`) left by a checkpoint writer that was killed are removed at the next start.
"""

from __future__ import annotations

import errno
import os
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path

from dlf.errors import DlfError

NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # disk full, quota exceeded, file-size limit (ulimit -f)


def write_failed(path, e: OSError, kept: str = "") -> DlfError:
    code = errno.errorcode.get(e.errno or 0, "")
    cause = f"{e.strerror or e}" + (f", {code}" if code else "")
    if e.errno in NO_SPACE:
        fix = "free space on that disk (or raise the quota or `ulimit -f`)"
    else:
        fix = "check that its folder exists and is writable"
    return DlfError(f"could not write {path} ({cause}){kept}: {fix}, then resume with the same command plus "
                    "ckpt_path=last")


def _path_in_traceback(e: BaseException) -> str | None:
    """The file the innermost frame of `e`'s traceback was writing: a local file object's name, or a local path."""
    tb, frames = e.__traceback__, []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for name, value in frame.f_locals.items():
            if hasattr(value, "write") and _is_path(getattr(value, "name", None)):  # an open (or closed) file object
                return os.fsdecode(value.name)
            if name in ("filename", "path", "fname", "file_path") and _is_path(value):
                return os.fsdecode(value)
    return None


def _is_path(value) -> bool:
    return isinstance(value, (str, bytes, os.PathLike)) and os.sep in os.fsdecode(value)


def explain_write_error(e: BaseException, run_dir=None) -> DlfError | None:
    """The one-line DlfError for an OSError of a failed write somewhere in `e`'s chain (a DlfError met first in the
    chain wins), else None."""
    seen, chain = e, []
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for x in chain:
        if isinstance(x, DlfError):  # already one line (dlf.run.checkpoint.atomic_save names its file itself)
            return x
        if isinstance(x, OSError) and x.errno in NO_SPACE:
            path = x.filename or _path_in_traceback(x) or (f"a file under {run_dir}" if run_dir else "a file")
            return write_failed(path, x)
    return None


def remove_stale_temps(folder) -> list[Path]:
    """Remove `.<name>.<pid>.<random>.tmp` files in `folder` whose writer is gone (not a live process, or this one:
    it has not written yet). Returns what was removed."""
    removed = []
    for p in Path(folder).glob(".*.ckpt.*.tmp") if Path(folder).is_dir() else []:
        parts = p.name.split(".")
        pid = int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else None
        if pid is not None and pid != os.getpid() and _alive(pid):
            continue  # another process is writing it right now
        try:
            p.unlink()
            removed.append(p)
        except FileNotFoundError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def atomic_write(path, mode: str = "wb", tmp_prefix: str | None = None):
    """A file object on a temporary file beside `path`; when the block ends cleanly it is flushed, fsynced and
    `os.replace`d over `path` (atomic on POSIX, the same file system), and the folder is fsynced so the rename lasts.
    If the block raises, the temporary file goes and `path` is untouched. The temporary file is
    `<tmp_prefix or .name>.<pid>.<random>.tmp` (the pid tells `remove_stale_temps` whether its writer is alive), made
    with the umask's permissions like any new file (tempfile.mkstemp would make it 0600, and a replaced file keeps
    them). Text modes are UTF-8."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{tmp_prefix or '.' + path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass


def atomic_write_text(path, text: str) -> Path:
    """`Path.write_text` (UTF-8), whole or not at all (see `atomic_write`)."""
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


@contextmanager
def whole_or_absent(path):
    """Remove `path` if the block writing it fails (a PNG cut short by a full disk is worse than none)."""
    try:
        yield
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise


_hook_installed = False


def quiet_writer_threads() -> None:
    """threading.excepthook that stays silent for a failed write (NO_SPACE) in a background writer thread."""
    global _hook_installed
    if _hook_installed:
        return
    previous = threading.excepthook

    def hook(args):
        if isinstance(args.exc_value, OSError) and args.exc_value.errno in NO_SPACE:
            return  # re-raised by the writer's owner in the main thread (tensorboard's _check_worker_status)
        previous(args)

    threading.excepthook = hook
    _hook_installed = True


@contextmanager
def sqlite_setup_lock(url: str):
    """One process at a time in the set-up of a SQLite database named by a `sqlite:///<file>` URL (an MLflow store,
    an Optuna study): an exclusive lock on `<file>.lock` beside it (POSIX). Other URLs (a server) and other systems: no
    lock. Two processes creating the same new database at once otherwise race on its tables."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None
    if fcntl is None or not (isinstance(url, str) and url.startswith("sqlite:///")):
        yield
        return
    with open(url[len("sqlite:///"):] + ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
