"""Generated datasets cached under the data dir, safe for many processes at once and for damaged files.

`cached(path, make)` returns the tensors stored at `path`, building them with `make()` the first time:

- **One builder.** The builder holds an exclusive `fcntl.flock` on the cache's folder (a lock on the folder, not a lock
  file, so nothing is left beside the cache); processes started together wait for it and then read its file.
- **Never half a file.** The file is written to a temporary name in the same folder (`.<name>.<pid>.<random>.tmp`), flushed,
  fsynced and `os.replace`d into place, so a reader sees either no file or the complete one. Temporary files of killed
  builders are removed by the next builder (it holds the lock, so nobody else is writing them).
- **Damaged files are rebuilt.** A cache that does not load (truncated, garbage, another format) gives one warning line on
  stderr and is built again.
"""

from __future__ import annotations

import fcntl
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch

from dlf.faults import atomic_write


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True)  # plain tensors only: a cache never runs pickled code


@contextmanager
def _folder_lock(folder: Path):
    """Exclusive lock on `folder` (flock on a folder descriptor: released when the process dies, however it dies)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _write(obj, path: Path) -> None:
    with atomic_write(path) as f:  # readers see no file or the whole new one
        torch.save(obj, f)


def _warn(path: Path, e: Exception) -> None:
    why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print(f"dlf: warning: the cached data file {path} is damaged ({type(e).__name__}: {why[:120]}): rebuilding it",
          file=sys.stderr, flush=True)


def cached(path: str | Path, make: Callable[[], dict]) -> dict:
    """The dict of tensors at `path`; built by `make()` (once, whatever the number of processes) if absent or damaged."""
    path = Path(path)
    if path.exists():  # the common case: no lock needed, os.replace makes the file whole or absent
        try:
            return _load(path)
        except Exception as e:  # noqa: BLE001 - truncated zip, garbage, pickle: all rebuilt
            bad: Exception | None = e
    else:
        bad = None
    path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(path.parent):
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a builder that was killed
            stale.unlink(missing_ok=True)
        if path.exists():  # built by another process while we waited, or the damaged file seen above
            try:
                return _load(path)
            except Exception as e:  # noqa: BLE001
                bad = e
        if bad is not None:
            _warn(path, bad)
        data = make()
        _write(data, path)
    return data
