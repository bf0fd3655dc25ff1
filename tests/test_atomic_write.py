"""dlf.faults.atomic_write: the one way dlf writes a file whole (checkpoints, data caches, result.json, pages,
trackers.json, unpacked datasets, the class-score net, results.md): the old file or the complete new one, never a
torn mix, no temporary file left, and the permissions any new file gets."""

from __future__ import annotations

import gzip
import multiprocessing
import os
import re
import stat
from pathlib import Path

import pytest
import torch

from dlf.faults import atomic_write, atomic_write_text


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_writes_the_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "state.pt"  # the folder is made
    with atomic_write(path) as f:
        torch.save({"w": torch.arange(5)}, f)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(5))
    assert atomic_write_text(tmp_path / "page.html", "<p>é</p>\n").read_text(encoding="utf-8") == "<p>é</p>\n"
    assert _leftovers(path.parent) == [] and _leftovers(tmp_path) == []


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp(tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"old": 1}\n')
    with pytest.raises(RuntimeError, match="half-way"):
        with atomic_write(path, "w") as f:
            f.write('{"new": ')
            [tmp] = _leftovers(tmp_path)  # written beside it, under a hidden name that holds the writer's pid
            assert tmp.startswith(f".result.json.{os.getpid()}.")
            raise RuntimeError("killed half-way")
    assert path.read_text() == '{"old": 1}\n'
    assert _leftovers(tmp_path) == []


def test_a_replaced_file_gets_the_umask_permissions_not_0600(tmp_path):
    """tempfile.mkstemp makes 0600 files and os.replace keeps the temp file's mode: a checkpoint or report written so
    was unreadable to the rest of a group on a shared cluster."""
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        os.umask(0o002)
        with atomic_write(tmp_path / "b.ckpt") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.ckpt").stat().st_mode) == 0o664


def test_the_tmp_prefix_names_the_temp_file(tmp_path):
    """dlf's HPARAMS fix rewrites event files: its temp file must not hold "tfevents" (TensorBoard would read it)."""
    path = tmp_path / "events.out.tfevents.1.host.1.0"
    with atomic_write(path, tmp_prefix=".fix") as f:
        [name] = _leftovers(tmp_path)
        f.write(b"")
    assert name.startswith(f".fix.{os.getpid()}.") and "tfevents" not in name and path.exists()


def _unpack(folder, barrier):
    from dlf.data.vision import _unpack_gz

    barrier.wait()
    _unpack_gz(folder, ["train-images-idx3-ubyte"])


def test_two_processes_unpacking_one_dataset_both_see_the_whole_file(tmp_path):
    """DDP ranks start together and each unpacks the .gz it finds: each writes its own temp file (a shared `.part`
    name let one rank rename a file another was still writing)."""
    blob = os.urandom(4 << 20)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(blob)
    ctx = multiprocessing.get_context("fork")  # torch is imported already: the children start at once
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_unpack, args=(tmp_path, barrier)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert (tmp_path / "train-images-idx3-ubyte").read_bytes() == blob
    assert _leftovers(tmp_path) == []


def test_no_other_temp_file_and_rename_in_the_code():
    """One home: every whole-file write in src/ and scripts/ goes through atomic_write (there were ten hand-made
    copies, with three temp-name schemes and 0600 files from mkstemp)."""
    root = Path(__file__).resolve().parents[1]
    found = [f"{p.relative_to(root)}:{i}" for folder in ("src", "scripts") for p in sorted((root / folder).rglob("*.py"))
             if p.name != "faults.py"
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"os\.replace\(|os\.rename\(|mkstemp\(|\btmp\w*\.(replace|rename)\(", line)]
    assert found == []
