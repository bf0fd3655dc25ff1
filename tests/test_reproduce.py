"""scripts/reproduce.py: the quick reproduction writes a well-formed results table and merges with what was there."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
from cli_server import ROOT

spec = importlib.util.spec_from_file_location("reproduce", ROOT / "scripts" / "reproduce.py")
reproduce = importlib.util.module_from_spec(spec)
sys.modules["reproduce"] = reproduce  # its dataclasses look their module up
spec.loader.exec_module(reproduce)


def _run(args: list[str], tmp_path, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "DLF_ROOT": str(tmp_path), "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce.py"), "--quick", "--out",
                           str(tmp_path / "results.md"), "--workdir", str(tmp_path / "work"), *args],
                          env=env, capture_output=True, text=True, timeout=timeout)


def _table(text: str) -> list[list[str]]:
    lines = text.split("\n\nWhere and when")[0].splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("| experiment |"))
    assert set(lines[head + 1].replace("|", "")) == {"-"}
    return [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines[head:] if ln.startswith("|")]


def test_quick_xor_writes_a_table_and_keeps_other_families_rows(tmp_path):
    out = tmp_path / "results.md"
    other = {"key": "digits_cnn", "family": "digits", "name": "8x8 digits, CNN (model=cnn)", "command": "c",
             "seeds": 3, "ok": 3, "errors": [], "metrics": [["test/acc", "pct"]], "target": [["test/acc", ">=", 0.985]],
             "target_text": "≥ 98.5%", "published": "SVC 99.1%", "quick": False, "values": {"test/acc": [0.99, 0.98, 1.0]},
             "steps": 1360, "job_wall_s": 40.0, "wall_s": 130.0, "date": "d", "commit": "abc", "hardware": "h",
             "threads": 1, "jobs": 1, "versions": "v"}
    reproduce.merge(out, [other])  # a row of a family this run does not touch

    p = _run(["--families", "xor"], tmp_path, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"reproduce: total \d+ s for 1 rows", p.stdout)
    text = out.read_text()
    rows = _table(text)
    assert rows[0][:5] == ["experiment", "result (mean ± std)", "seeds", "target", "met"]
    assert all(len(r) == len(rows[0]) for r in rows)
    by_name = {r[0]: r for r in rows[2:]}
    xor = next(r for n, r in by_name.items() if n.startswith("XOR, MLP"))
    assert re.fullmatch(r"\d/2 seeds", xor[1]) and xor[2] == "2" and "python train.py -m" in xor[-1]
    course = [r for n, r in by_name.items() if n.startswith("XOR course exercise")]
    assert len(course) == 2 and all(re.match(r"\d+/20 seeds", r[1]) for r in course)
    assert by_name["8x8 digits, CNN (model=cnn)"][1] == "99.0 ± 1.0%"  # kept, and its mean ± std
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    assert f"| {commit}" in text  # the commit the rows were run at
    data = json.loads(reproduce.DATA.search(text).group(1))
    assert {r["key"] for r in data} >= {"xor", "digits_cnn"}
    assert all(r["quick"] for r in data if r["family"] == "xor")


def test_headline_and_target():
    rec = {"metrics": [["test/mse", "g"]], "values": {"test/mse": [0.004, 0.006]}, "quick": False,
           "target": [["test/mse", "<", 0.01]]}
    assert reproduce.headline(rec) == "0.005 ± 0.0014" and reproduce.met(rec) == "yes"
    rec["values"]["test/mse"] = [0.004, 0.03]
    assert reproduce.met(rec) == "**no**"


@pytest.mark.slow
def test_quick_every_family(tmp_path):
    p = _run(["--seeds", "1"], tmp_path, timeout=1800)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = _table((tmp_path / "results.md").read_text())[2:]
    assert len(rows) == len(reproduce.ROWS) + 2  # + the course's two quick rows
    assert not [r for r in rows if "failed" in r[1] or "no value" in r[1]]


def test_readme_table_is_written_between_its_marks(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{reproduce.MARKS[0]}\nold table\n{reproduce.MARKS[1]}\nrest\n")
    rec = {"key": "digits_cnn", "name": "8x8 digits, CNN", "seeds": 3, "metrics": [["test/acc", "pct"]],
           "values": {"test/acc": [0.97, 0.98, 0.99]}, "quick": False, "target": [["test/acc", ">=", 0.985]],
           "target_text": "≥ 98.5%", "published": "SVC 99.1%", "errors": [], "ok": 3, "command": "c", "steps": 1,
           "job_wall_s": 1.0, "wall_s": 3.0, "date": "d", "commit": "c", "hardware": "h", "threads": 1, "jobs": 1,
           "versions": "v"}
    reproduce.merge(tmp_path / "results.md", [rec], readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{reproduce.MARKS[1]}\nrest\n") and "old table" not in text
    assert "| 8x8 digits, CNN | 98.0 ± 1.0% (3 seeds) | ≥ 98.5% — **missed** | SVC 99.1% |" in text


def test_sequences_to_success_not_met_reads_not_solved():
    """The 1997 rows' headline: a seed that never met the success criterion has no sequences_to_success; the table
    says how many seeds solved it (a quick run's 20 steps solve nothing) instead of 'no value'."""
    rec = {"metrics": [["test/sequences_to_success", "seq"], ["test/wrong", "g"]],
           "values": {"test/sequences_to_success": [None, float("nan")], "test/wrong": [85.0, 88.0]}}
    assert reproduce.headline(rec).startswith("not solved (0/2 seeds solved), ")
    rec["values"]["test/sequences_to_success"] = [65000.0, None]
    assert reproduce.headline(rec).startswith("65,000 ± 0 sequences (1/2 seeds solved)")
    rec["values"]["test/sequences_to_success"] = [65000.0, 80000.0]
    assert reproduce.headline(rec).startswith("72,500 ± 10,607 sequences, ")
