"""scripts/gpu_check.sh, the one-command GPU check, runs end to end on CPU (--cpu: the dry run) and prints its table."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from cli_server import DATA_CACHE

ROOT = Path(__file__).resolve().parents[1]


def _dry_run(families: str, bench_steps: int, tmp_path: Path) -> subprocess.CompletedProcess:
    import sys

    env = dict(os.environ, PYTHON=sys.executable, DLF_ROOT=str(tmp_path), DLF_DATA=str(DATA_CACHE),
               OMP_NUM_THREADS="1", DLF_WHEELS=str(tmp_path / "no_wheels"))
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--cpu", "--families", families,
                           "--bench-steps", str(bench_steps)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1200)


def _rows(stdout: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| (\w+) \| `[^`]*` \| ([^|]*) \|", stdout, re.M)}


def test_dry_run_prints_the_table(tmp_path):
    r = _dry_run("mlp_xor", 5, tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Device: CPU" in r.stdout
    rows = _rows(r.stdout)
    assert rows["mlp_xor"].startswith("test/"), rows
    assert re.match(r"plain [\d.]+ ms/step, dlf [\d.]+ ms/step, ratio [\d.]+", rows["overhead"]), rows


def test_unknown_family_is_refused(tmp_path):
    r = _dry_run("transformer", 0, tmp_path)
    assert r.returncode == 2 and "unknown families ['transformer']" in r.stderr


@pytest.mark.slow
def test_dry_run_every_family(tmp_path):
    r = _dry_run("mlp_xor,mlp,cnn,cnn1d,rnn,lstm,gan,dcgan", 10, tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    rows = _rows(r.stdout)
    assert all(rows[f].startswith("test/") for f in ("mlp_xor", "mlp", "cnn", "cnn1d", "rnn", "lstm", "gan", "dcgan"))
