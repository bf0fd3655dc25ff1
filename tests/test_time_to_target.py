"""scripts/time_to_target.py (issue 31, item 4): old and new recipes of each headline run back to back through
`python train.py`, their CPU seconds and test metrics recorded, the "Time to target" section of docs/results.md written
from its data block, kept by scripts/reproduce.py when it rewrites the file; a bad `--only` key is one line, exit 2."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from cli_server import DATA_CACHE, ROOT

spec = importlib.util.spec_from_file_location("time_to_target", ROOT / "scripts" / "time_to_target.py")
ttt = importlib.util.module_from_spec(spec)
sys.modules["time_to_target"] = ttt  # its dataclasses look their module up
spec.loader.exec_module(ttt)


def _script(name: str, args: list[str], tmp_path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "DLF_ROOT": str(tmp_path), "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _data(text: str) -> list[dict]:
    return json.loads(ttt.DATA.search(ttt.SECTION.search(text).group(0)).group(1))


def test_quick_headline_end_to_end_and_reproduce_keeps_the_section(tmp_path):
    """One cheap headline, quick budgets, one seed of each recipe, into a copy of docs/results.md: the section and
    its data appear after reproduce.py's table (which stays as it was), each run is a real train.py run dir with its
    CPU and wall seconds, and `reproduce.py --render` rewrites the file keeping the section byte for byte."""
    out = tmp_path / "results.md"
    before = (ROOT / "docs" / "results.md").read_text()
    out.write_text(before)
    work = tmp_path / "work"
    p = _script("time_to_target.py", ["--quick", "--only", "lstm_mnist1d", "--seeds", "1", "--out", str(out),
                                      "--work", str(work), "--set", f"paths.data_dir={DATA_CACHE}"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "lstm_mnist1d old s1: " in p.stdout and "lstm_mnist1d new s1: " in p.stdout
    text = out.read_text()
    sec = ttt.SECTION.search(text).group(0)
    assert text.startswith(before.split("\n<!-- time-to-target:start")[0])  # reproduce.py's part untouched
    assert "## Time to target" in sec and "| LSTM, MNIST-1D *(quick)* | test accuracy ≥ 97% |" in sec
    assert "| — (quick) | `python scripts/time_to_target.py --only lstm_mnist1d --seeds 1 --quick" in sec
    [rec] = [r for r in _data(text) if r["key"] == "lstm_mnist1d"]  # the page's other headlines are kept
    assert rec["quick"] and rec["check"] == "test/acc >= 0.97"
    assert [(r["recipe"], r["seed"]) for r in rec["runs"]] == [("old", 1), ("new", 1)]
    for r in rec["runs"]:
        run_dir = work / "lstm_mnist1d" / f"{r['recipe']}_s1"
        assert r["status"] == "ok" and (run_dir / "result.json").is_file() and list(run_dir.glob("events.out.*"))
        assert "experiment=lstm_mnist1d" in r["overrides"] and "seed=1" in r["overrides"]
        assert 0 < r["cpu_s"] < 10 * r["wall_s"] and r["wall_s"] > 0 and r["load_1min"] >= 0 and r["others"] >= 0
        assert 0 <= r["metrics"]["test/acc"] <= 1 and r["met"] == (r["metrics"]["test/acc"] >= 0.97)
        assert f"| lstm_mnist1d | {r['recipe']} | 1 | {r['cpu_s']:.1f} | {r['wall_s']:.1f} |" in sec

    p = _script("reproduce.py", ["--render", "--out", str(out)], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    again = out.read_text()
    assert ttt.SECTION.search(again).group(0) == sec and again.count("<!-- time-to-target:start") == 1
    assert again.split("<!-- reproduce-data")[0] == before.split("<!-- reproduce-data")[0]  # its table as it was


def test_only_merges_by_key_and_reproduce_merge_keeps_the_section(tmp_path):
    out = tmp_path / "results.md"
    ttt.merge(out, [_rec("lstm_mnist1d", 40.0, [20.0])])
    ttt.merge(out, [_rec("cnn_digits", 70.0, [30.0, 36.0])])  # another headline: the first one is kept
    ttt.merge(out, [_rec("lstm_mnist1d", 40.0, [30.0])])      # the same headline again: replaced
    recs = _data(out.read_text())
    assert [r["key"] for r in recs] == ["cnn_digits", "lstm_mnist1d"]  # the order of HEADLINES
    assert recs[1]["runs"][1]["cpu_s"] == 30.0
    sec = ttt.SECTION.search(out.read_text()).group(0)
    assert "| 70 (1 seed) | `model=cnn trainer.max_epochs=40` | 33 (2 seeds) | 47% |" in sec and "| 40 (1 seed) |" in sec

    row = {"key": "digits_cnn", "family": "digits", "name": "8x8 digits, CNN", "command": "c", "seeds": 1, "ok": 1,
           "errors": [], "metrics": [["test/acc", "pct"]], "target": [], "target_text": "report", "published": "—",
           "quick": False, "values": {"test/acc": [0.99]}, "steps": 1, "job_wall_s": 1.0, "wall_s": 1.0, "date": "d",
           "commit": "c", "hardware": "h", "threads": 1, "jobs": 1, "versions": "v"}
    ttt.reproduce.merge(out, [row])
    text = out.read_text()
    assert text.startswith("# dlf's results, reproduced") and "| 8x8 digits, CNN | 99.0 ± 0.0% |" in text
    assert ttt.SECTION.search(text).group(0) == sec  # re-emitted as it was, after reproduce.py's data
    assert text.index("<!-- reproduce-data") < text.index("<!-- time-to-target:start")
    plain = tmp_path / "plain.md"
    ttt.reproduce.merge(plain, [row])  # a file that never had the section does not get one
    assert "time-to-target" not in plain.read_text()


def test_bad_only_key_is_one_line_exit_2(tmp_path):
    p = _script("time_to_target.py", ["--only", "lstm_mnist1d", "lstm_adding_T200", "--out", str(tmp_path / "r.md")],
                tmp_path, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.splitlines() == ["time_to_target: error: --only lstm_adding_T200: no such headline; choose from "
                                     "lstm_adding_T100, cnn_digits, lstm_mnist1d, cnn1d_mnist1d, gan_grid"]
    assert not (tmp_path / "r.md").exists() and not (tmp_path / "logs").exists()


def _run(recipe: str, seed: int, cpu: float, ok: bool = True) -> dict:
    return {"recipe": recipe, "seed": seed, "cpu_s": cpu, "wall_s": cpu, "load_1min": 0.0, "others": 0.0,
            "status": "ok", "error": None, "metrics": {"test/acc": 0.99 if ok else 0.5}, "met": ok, "overrides": []}


def _rec(key: str, old: float, new: list[float], quick: bool = False, met: bool = True) -> dict:
    h = next(h for h in ttt.HEADLINES if h.key == key)
    return {"key": key, "name": h.name, "target": h.target, "check": h.check, "old": h.old, "new": h.new,
            "seeds": len(new), "old_seeds": 1, "quick": quick, "command": f"python scripts/time_to_target.py --only "
            f"{key}", "runs": [_run("old", 1, old), *[_run("new", i + 1, c, met) for i, c in enumerate(new)]],
            "date": "d", "commit": "c", "hardware": "h", "versions": "v"}


def test_ratio_met_and_goal():
    s = ttt.summary(_rec("cnn_digits", 100.0, [50.0, 60.0, 70.0]))
    assert (s["old_cpu_s"], s["new_cpu_s"], s["ratio"], s["all_new_met"]) == (100.0, 60.0, 0.6, True)
    assert s["within_goal"] == "yes"  # exactly 60 % is within
    assert ttt.summary(_rec("cnn_digits", 100.0, [61.0]))["within_goal"] == "**no**"
    missed = ttt.summary(_rec("cnn_digits", 100.0, [30.0], met=False))  # fast, but below the target
    assert missed["ratio"] == 0.3 and not missed["all_new_met"] and missed["within_goal"] == "**no**"
    assert ttt.summary(_rec("cnn_digits", 100.0, [30.0], quick=True))["within_goal"] == "— (quick)"
    running = _rec("cnn_digits", 100.0, [30.0])
    running["seeds"] = 3  # two new seeds still to run
    assert ttt.summary(running)["within_goal"] == "— (incomplete)"
    failed = _rec("cnn_digits", 100.0, [30.0, 40.0])
    failed["runs"][2].update(status="diverged", met=False)  # a failed seed: not in the mean, and not met
    assert ttt.summary(failed)["new_cpu_s"] == 30.0 and ttt.summary(failed)["within_goal"] == "**no**"

    grid = "test/modes >= 24 and test/high_quality >= 90"
    assert ttt.met(grid, {"test/modes": 24.0, "test/high_quality": 90.0})
    assert not ttt.met(grid, {"test/modes": 23.0, "test/high_quality": 99.0})
    assert not ttt.met(grid, {"test/modes": 25.0})  # a metric the run did not log: not met
    assert ttt.met("test/mse < 0.01", {"test/mse": 0.0099}) and not ttt.met("test/mse < 0.01", {"test/mse": 0.01})
    assert not ttt.met("test/mse < 0.01", {"test/mse": None})  # a non-finite value, recorded as null
    with pytest.raises(ValueError, match="not `metric op value`"):
        ttt.clauses("test/acc == 1")
    assert all(ttt.clauses(h.check) for h in ttt.HEADLINES)  # every headline's check parses
    assert ttt.order(1, 3) == [("old", 1), ("new", 1), ("new", 2), ("new", 3)]
    assert ttt.order(2, 2) == [("old", 1), ("new", 1), ("old", 2), ("new", 2)]


def test_quick_never_writes_docs_results_md_unless_out_says_so(tmp_path):
    work = str(tmp_path / "w")
    assert ttt.parse(["--quick", "--work", work]).out == tmp_path / "w" / "time_to_target.md"
    assert ttt.parse(["--work", work]).out == ROOT / "docs" / "results.md"
    assert ttt.parse(["--quick", "--out", str(ROOT / "docs" / "results.md")]).out == ROOT / "docs" / "results.md"


def test_docs_results_md_has_the_section():
    """The page carries the section (measured or 'Not measured yet'), and its data block parses."""
    text = (ROOT / "docs" / "results.md").read_text()
    assert "## Time to target" in ttt.SECTION.search(text).group(0)
    assert all(r["key"] in {h.key for h in ttt.HEADLINES} for r in _data(text))


def test_a_run_that_fails_is_recorded_as_failed_not_met(tmp_path, monkeypatch):
    """A run whose train.py exits non-zero (here a bad override, refused at start-up) is a failed run: its exit
    status and its log's path recorded, not met, and left out of the CPU mean."""
    import argparse

    monkeypatch.setenv("DLF_ROOT", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "src"))
    a = argparse.Namespace(work=str(tmp_path / "work"), quick=True, set=["trainer.no_such_key=1"])
    h = next(h for h in ttt.HEADLINES if h.key == "cnn_digits")
    run = ttt.run_one(h, "new", 1, a)
    log = tmp_path / "work" / "cnn_digits" / "new_s1.log"
    assert run["status"] == "exit 2" and not run["met"] and run["error"] == f"exit 2: see {log}"
    assert "no_such_key" in log.read_text() and run["cpu_s"] > 0
    rec = _rec("cnn_digits", 100.0, [])
    rec["runs"].append(run)
    assert ttt.summary(rec)["new_cpu_s"] is None and "exit 2" in ttt._metrics(run, h.check)
