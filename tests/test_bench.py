"""scripts/bench.py: the four sides agree on the final loss (and the check fails when they do not), the last line's
exact form; the course table of scripts/xor_course.py."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAST = re.compile(r"^xor: plain \d+\.\d\d ms/step, floor \d+\.\d\d ms/step, dlf \d+\.\d\d ms/step, "
                  r"ratio \d+\.\d\d, vs floor \d+\.\d\d$")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return mod


@pytest.fixture
def bench(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # bench_workloads, the dlf side's StepClock _target_
    monkeypatch.setenv("DLF_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return _script("bench")


def test_sides_agree_and_last_line(bench, capsys):
    rc = bench.main(["xor", "--steps", "12", "--repeats", "1"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0, out[-3:]
    assert LAST.match(out[-1]), out[-1]
    sides = [line for line in out if re.match(r"  (plain|floor|lightning|dlf) *:", line)]
    losses = [float(re.search(r"final loss (\S+)", line).group(1)) for line in sides]
    assert len(losses) == 4 and max(losses) - min(losses) <= 1e-4 * abs(losses[0])
    # the decomposition line: Lightning with dlf's features but no dlf, against the floor, and dlf against it
    assert re.match(r"^xor: Lightning with the same features, no dlf .*: \d+\.\d\d ms/step = \d+\.\d\d x floor; "
                    r"dlf \d+\.\d\d x that$", out[-2]), out[-2]


def test_disagreement_fails(bench, capsys):
    """A side that computes something else (the plain loop at twice the learning rate) makes the benchmark fail."""
    rc = bench.main(["xor", "--steps", "12", "--repeats", "1", "--perturb-plain"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 1
    assert "BENCHMARK WRONG" in out[-1] and "ms/step, ratio" not in out[-1]


def test_xor_course_table():
    """The course's GD (alpha 0.01, 10,000 steps) solves fewer seeds than alpha = 1 does; the table's form."""
    course = _script("xor_course")
    rows = course.course_table(seeds=4, settings=[(0.01, 2000), (2.0, 2000)])
    assert [r["alpha"] for r in rows] == [0.01, 2.0]
    assert rows[0]["solved"] < rows[1]["solved"]
    assert re.match(r"GD alpha=2.0   J=1/2 sum,   2,000 steps: solved  \d/4 seeds, median first step solved",
                    course.format_row(rows[1]))
