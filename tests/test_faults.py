"""Faults injected into real training processes (forked `python train.py` children, see cli_server.py), and what dlf
promises under each (docs/reliability.md, "Faults survived"):

- disk full / quota / `ulimit -f` while writing a checkpoint, an event file or a figure: one line naming the file and the
  cause, a non-zero exit, the previous last.ckpt intact, no temporary file; `ckpt_path=last` then continues exactly;
- temporary checkpoint files of a writer killed mid-write are removed by the next run of that dir;
- a truncated, zero-filled or bit-flipped checkpoint: one line (what, which file, what to do), nothing touched;
- a damaged MNIST-1D cache: one warning line, rebuilt, the run succeeds;
- N runs started at once on one data dir and task with no cache yet: all succeed, one cache file, own run dirs.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
import torch
from cli_server import shared_server
from test_resume import _check_resumed, _final, _runs, _test_line, assert_same

import dlf.run.checkpoint as ck

# The XOR MLP: 3 epochs of 9 steps, last.ckpt every 4 steps, deterministic on CPU; figures on (cost curve, decision
# boundary), TensorBoard events unless a test says logger=csv.
XOR = ["model=mlp_xor", "data.repeats=9", "trainer.max_epochs=3", "trainer=cpu", "trainer.deterministic=true",
       "callbacks.step_checkpoint.every_n_train_steps=4", "callbacks.model_summary=null",
       "trainer.enable_progress_bar=false"]
TMPS = ".*.tmp"


@pytest.fixture(scope="module")
def server():
    return shared_server()


_BASE: dict = {}


def baseline(server, args: list[str], tmp_path_factory):
    """(final last.ckpt, Test: line) of `args` run uninterrupted (once per argument list)."""
    key = tuple(args)
    if key not in _BASE:
        root = tmp_path_factory.mktemp("faults_base")
        r = server.run(args, cwd=root)
        assert r.returncode == 0, r.stderr[-3000:]
        (run,) = _runs(root, "mlp_xor")
        _BASE[key] = (_final(run), _test_line(r.stdout))
    return _BASE[key]


def one_error_line(stderr: str) -> str:
    """The run's error: the last stderr line, and no traceback anywhere."""
    assert "Traceback" not in stderr and "Logging error" not in stderr, stderr[-3000:]
    return stderr.strip().splitlines()[-1]


# --- 2. disk full ---------------------------------------------------------------------------------------------------

def test_file_size_limit_during_checkpoint_write(server, tmp_path, tmp_path_factory):
    """`ulimit -f` (EFBIG, as a full disk or a quota would refuse) from step 8 on: the step-8 last.ckpt cannot be
    written. One line naming last.ckpt and the cause, exit 2, step 4's last.ckpt intact, no temp file; resumed once
    there is room, the run ends bit-identical to one never interrupted."""
    args = [*XOR, "logger=csv"]
    base = baseline(server, args, tmp_path_factory)
    fault = ["+callbacks.fault._target_=killers.LimitFileSize", "+callbacks.fault.step=8", "+callbacks.fault.limit=8192"]
    r = server.run(args + fault, cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-3000:]
    (run,) = _runs(tmp_path, "mlp_xor")
    last = run / "checkpoints" / "last.ckpt"
    assert one_error_line(r.stderr) == (
        f"dlf: error: could not write {last} (File too large, EFBIG); the previous last.ckpt is kept: free space on "
        "that disk (or raise the quota or `ulimit -f`), then resume with the same command plus ckpt_path=last")
    assert ck.read_checkpoint(last)["global_step"] == 4
    assert not list((run / "checkpoints").glob(TMPS))
    r2 = server.run(args + ["ckpt_path=last"], cwd=tmp_path)  # a fresh process: no limit
    _check_resumed(tmp_path, "mlp_xor", r2, base)


@pytest.fixture
def small_disk():
    """mount(folder): a 256 kB tmpfs at `folder` (root only), unmounted at the end of the test."""
    mounted = []

    def mount(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.decode().strip()[:200]}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
@pytest.mark.parametrize("target,expect", [("checkpoints", "last.ckpt"), ("tensorboard", "events.out.tfevents."),
                                           ("plots", "cost_curve.png")])
def test_disk_full(target, expect, server, small_disk, tmp_path, tmp_path_factory):
    """A real full disk (ENOSPC): the run dir's `target` folder is a small tmpfs that a test callback fills at step 6.
    The write that meets it fails in one line naming that file; no partial file is left; last.ckpt loads; once the
    space is freed, ckpt_path=last continues exactly."""
    base = baseline(server, XOR, tmp_path_factory)
    run = tmp_path / "logs" / "mlp_xor" / "runs" / "full"
    disk = small_disk(run / target)
    fault = ["+callbacks.fault._target_=killers.FillDisk", "+callbacks.fault.step=6",
             f"+callbacks.fault.folder={disk}", f"hydra.run.dir={run}"]
    if target == "tensorboard":  # the event file in a folder of its own (it is in the run dir itself by default)
        fault.append("logger.tensorboard.name=tensorboard")
    r = server.run(XOR + fault, cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-3000:]
    line = one_error_line(r.stderr)
    assert line.startswith(f"dlf: error: could not write {disk}/{expect}") and "(No space left on device, ENOSPC)" \
        in line and line.endswith("then resume with the same command plus ckpt_path=last"), line
    assert ck.read_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] >= 4
    written = sorted(p.name for p in disk.iterdir() if p.name != ".filler")
    assert not [n for n in written if n.endswith(".tmp") or n.endswith(".png")], written  # no partial file
    (disk / ".filler").unlink()  # space again
    r2 = server.run(XOR + ["ckpt_path=last"], cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert _runs(tmp_path, "mlp_xor") == [run]  # resumed in place
    final, test_line = base
    got = _final(run)
    assert got["global_step"] == final["global_step"]
    assert_same(final["state_dict"], got["state_dict"], "state_dict")
    assert_same(final["optimizer_states"], got["optimizer_states"], "optimizer_states")
    assert _test_line(r2.stdout) == test_line


# --- 3. leftovers ---------------------------------------------------------------------------------------------------

def test_killed_writers_temp_file_removed_at_next_start(server, tmp_path):
    """SIGKILL in the middle of writing the 2nd checkpoint leaves .last.ckpt.<pid>.<random>.tmp; the resumed run
    removes it (and the run ends with only its checkpoints in the folder)."""
    args = [*XOR, "logger=none"]
    r = server.run([*args, "+callbacks.kill._target_=killers.KillDuringSave", "+callbacks.kill.n=2"], cwd=tmp_path)
    assert r.returncode == -9, r.stderr[-2000:]
    (run,) = _runs(tmp_path, "mlp_xor")
    (torn,) = (run / "checkpoints").glob(TMPS)
    assert torn.name.startswith(".last.ckpt.") and torn.stat().st_size > 0
    r2 = server.run([*args, "ckpt_path=last"], cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


def test_temp_file_of_a_live_writer_is_kept(tmp_path):
    """Only files whose writer is gone are removed: a concurrent writer's file (its pid alive) stays."""
    from dlf.faults import remove_stale_temps

    live = tmp_path / f".last.ckpt.{os.getppid()}.abc123.tmp"
    dead = tmp_path / ".best.ckpt.999999999.abc123.tmp"
    old = tmp_path / ".last.ckpt.abc123.tmp"  # the name before the pid was recorded
    for p in (live, dead, old, tmp_path / "last.ckpt"):
        p.write_bytes(b"x")
    assert sorted(p.name for p in remove_stale_temps(tmp_path)) == sorted([dead.name, old.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "last.ckpt"])


# --- 4. damaged files -----------------------------------------------------------------------------------------------

def _tree_hash(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".cli_")}


def _damaged(data: bytes, how: str) -> bytes:
    if how == "truncated":
        return data[: len(data) // 2]
    if how == "zero-filled":
        return b"\0" * len(data)
    mid = len(data) // 2  # flipped: one bit in the middle of the tensor data (torch.load alone would not notice)
    return data[:mid] + bytes([data[mid] ^ 0x01]) + data[mid + 1:]


@pytest.fixture(scope="module")
def finished_run(server, tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged")
    r = server.run([*XOR, "logger=csv"], cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = _runs(root, "mlp_xor")
    return root, run


@pytest.mark.parametrize("how", ["truncated", "zero-filled", "flipped"])
@pytest.mark.parametrize("form", ["last", "path"])
def test_damaged_checkpoint_one_line_nothing_touched(how, form, server, finished_run):
    root, run = finished_run
    last = run / "checkpoints" / "last.ckpt"
    good = last.read_bytes()
    try:
        last.write_bytes(_damaged(good, how))
        before = _tree_hash(root)
        r = server.run([*XOR, "logger=csv", f"ckpt_path={'last' if form == 'last' else last}"], cwd=root)
        assert r.returncode == 2, r.stderr[-2000:]
        assert r.stderr.strip().count("\n") == 0, r.stderr  # exactly one line
        line = r.stderr.strip()
        assert line.startswith(f"dlf: error: checkpoint {last.resolve()} is damaged (") and "best.ckpt" in line, line
        assert _tree_hash(root) == before  # no run dir made, nothing rewritten
    finally:
        last.write_bytes(good)


MNIST1D = ["model=mlp", "data.num_samples=500", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
           "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "logger=none", "trainer=cpu",
           "callbacks.model_summary=null", "trainer.enable_progress_bar=false"]


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_damaged_data_cache_is_rebuilt(how, server, tmp_path):
    data = tmp_path / "data"
    r = server.run([*MNIST1D, f"paths.data_dir={data}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    (cache,) = (data / "mnist1d").iterdir()
    good = torch.load(cache, weights_only=True)
    raw = cache.read_bytes()
    cache.write_bytes(raw[: len(raw) // 3] if how == "truncated" else os.urandom(len(raw)))
    r = server.run([*MNIST1D, f"paths.data_dir={data}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("dlf: warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(f"dlf: warning: the cached data file {cache} is damaged ("), \
        r.stderr
    assert warnings[0].endswith("): rebuilding it")
    assert [p.name for p in (data / "mnist1d").iterdir()] == [cache.name]
    rebuilt = torch.load(cache, weights_only=True)
    assert all(torch.equal(good[k], rebuilt[k]) for k in good)


# --- 5. concurrency -------------------------------------------------------------------------------------------------

def test_runs_started_together_share_one_cache(server, tmp_path):
    """4 runs forked within milliseconds on one data dir (no cache yet) and one task, in the same clock second:
    one builds the cache while the others wait; all succeed with the same data, exactly one cache file and no
    temporary file results, every run has its own dir."""
    data, builds = tmp_path / "data", tmp_path / "builds"
    args = [*MNIST1D, f"paths.data_dir={data}", "data._target_=killers.CountingMNIST1D", f"+data.builds_dir={builds}"]
    results = server.run_together([(args, tmp_path)] * 4, frozen_now="2026-01-01T00:00:00")
    assert all(r.returncode == 0 for r in results), [r.stderr[-1500:] for r in results]
    assert len(list(builds.iterdir())) == 1  # one process built the cache, the other three waited and read it
    assert not any("dlf: warning" in r.stderr for r in results)  # nobody read a half-written cache
    assert len({_test_line(r.stdout) for r in results}) == 1  # ... and all read the same data
    files = sorted(p.name for p in (data / "mnist1d").iterdir())
    assert len(files) == 1 and files[0].endswith(".pt"), files
    runs = sorted(p.name for p in (tmp_path / "logs" / "mlp" / "runs").iterdir())
    assert len(runs) == 4 and all(n.startswith("2026-01-01_00-00-00_") for n in runs), runs
