"""TensorBoard as a user opens it: a real `tensorboard --logdir logs/` over two sweeps of different tasks, a single run
and a run dir of the old layout (fixed with `dlf-compare --fix-tensorboard`), read through TensorBoard's own HTTP API:
every run is an hparams session; the swept keys and the learning rate each run used are columns, no `schema@*` one;
the custom-scalars layout is there; no `epoch` scalar. Also: seeds aggregated in sweep.md/csv, `dlf-compare logs/`
keeping each sweep's jobs together, and the console (one model summary per architecture, a one-line bar with the
run's time left, the TensorBoard hint only where events were written)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cli_server import shared_server

from dlf.callbacks.layout import scalars_layout

ROOT = Path(__file__).resolve().parents[1]
OLD_RUN = ROOT / "tests" / "data" / "tb_layout_23bf94c" / "2026-12-05_02-22-38_4528"
XOR_FAST = ["trainer.max_epochs=1", "data.repeats=10"]
SWEEP_A = ["-m", "model=mlp_xor", "optimizer=sgd,adam", "seed=1,2", *XOR_FAST]  # 4 jobs: 2 settings x 2 seeds
SWEEP_B = ["-m", "model=mlp", "data=moons", "model.net.hidden=[4],[8]", "trainer.max_epochs=1"]
SINGLE = ["model=mlp_xor", "optimizer.lr=0.1", *XOR_FAST]
CSV_RUN = ["model=mlp_xor", "logger=csv", *XOR_FAST]


def _compare(args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "dlf.tools.compare", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """logs/ after two sweeps (XOR, half-moons), a single run, a CSV-only run and an old-layout run dir, fixed. Each
    a `python train.py ...` of its own (tests/cli_server.py: forked after the imports), output not a terminal."""
    cwd = tmp_path_factory.mktemp("dash")
    out = {}
    for name, args in (("a", SWEEP_A), ("b", SWEEP_B), ("single", SINGLE), ("csv", CSV_RUN)):
        r = shared_server().run(args, cwd=cwd)
        assert r.returncode == 0, (name, r.stderr[-3000:])
        out[name] = r.stdout
    old = cwd / "logs" / "mlp_xor" / "runs" / OLD_RUN.name
    shutil.copytree(OLD_RUN, old)
    r = _compare(["--fix-tensorboard", cwd / "logs"], cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("rewritten as dlf writes event files now") == 2, r.stdout[-3000:]  # its two event files
    out["compare"] = r.stdout
    return cwd / "logs", out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def tensorboard(logs, tmp_path_factory):
    """A real TensorBoard server on 127.0.0.1 over logs/, as the README starts it; stopped with everything it
    started (its process group) at the end."""
    logdir, _ = logs
    exe = Path(sys.executable).parent / "tensorboard"
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "tensorboard.main"]
    port = _free_port()
    log = open(tmp_path_factory.mktemp("tb") / "tensorboard.log", "w+")
    proc = subprocess.Popen([*cmd, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        runs, deadline = [], time.monotonic() + 120
        while time.monotonic() < deadline:  # up, and every run loaded (TensorBoard loads the log dir in the background)
            try:
                runs = _get(f"{base}/data/runs")
                if len(runs) >= 8 and len(_get(f"{base}/data/plugin/scalars/tags")) >= 8:
                    break
            except OSError:
                assert proc.poll() is None, Path(log.name).read_text()[-3000:]
            time.sleep(1)
        assert len(runs) >= 8, runs
        time.sleep(2)  # one more reload: the last files read to their end
        yield base, runs
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        log.close()
        for _ in range(100):  # nothing of it left running (the data server it may have started)
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"TensorBoard's process group {proc.pid} still runs after SIGTERM and SIGKILL")


ALL_STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


def test_every_run_is_an_hparams_row_with_the_swept_keys_and_the_lr_it_used(tensorboard):
    base, runs = tensorboard
    assert len(runs) == 8 and not [r for r in runs if r.endswith("/tensorboard") and "4528" not in r], runs
    experiment = _get(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
    columns = {h["name"]: h for h in experiment["hparamInfos"]}
    assert not [c for c in columns if c.startswith("schema@") or c in ("callbacks", "logger", "paths")], columns
    for swept in ("optimizer", "seed", "model.net.hidden", "lr", "job", "model", "data"):
        assert columns[swept]["differs"], (swept, columns[swept])
    lr = columns["lr"]["domainInterval"]
    assert lr["minValue"] == pytest.approx(0.01) and lr["maxValue"] == pytest.approx(4.0)  # moons adam 0.01 .. XOR sgd 4.0
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"hp/best", "hp/last", "hp/test/acc"} <= metrics and "epoch" not in metrics
    groups = _get(f"{base}/data/plugin/hparams/session_groups",
                  {"experimentName": "", "allowedStatuses": ALL_STATUSES, "colParams": [], "startIndex": 0,
                   "sliceSize": 100})["sessionGroups"]
    sessions = {s["name"]: g for g in groups for s in g["sessions"]}
    assert set(sessions) == set(runs)  # every run a row, the old one included
    rates = {name: g["hparams"]["lr"] for name, g in sessions.items()}
    by = {name: g["hparams"] for name, g in sessions.items()}
    xor_sweep = [n for n in sessions if "mlp_xor/multiruns" in n]
    assert sorted(by[n]["job"] for n in xor_sweep) == [0, 1, 2, 3]
    assert {(by[n]["optimizer"], rates[n]) for n in xor_sweep} == {("sgd", 4.0), ("adam", 0.05)}  # model.lr_table
    single = next(n for n in sessions if "mlp_xor/runs" in n and "4528" not in n)
    assert rates[single] == pytest.approx(0.1) and "job" not in by[single]
    old = next(n for n in sessions if "4528" in n)
    assert rates[old] == 4.0 and by[old]["optimizer"] == "sgd" and by[old]["trainer.max_epochs"] == 2
    moons = [n for n in sessions if n.startswith("mlp/multiruns")]
    assert {by[n]["model.net.hidden"] for n in moons} == {"[4]", "[8]"} and {by[n]["data"] for n in moons} == {"moons"}
    assert all(g["sessions"][0]["status"] == "STATUS_SUCCESS" for g in groups)
    values = {m["name"]["tag"]: m["value"] for m in sessions[single]["metricValues"]}
    assert "hp/best" in values and "hp/test/acc" in values


def test_custom_scalars_layout_and_no_epoch_scalar(tensorboard):
    base, runs = tensorboard
    layout = _get(f"{base}/data/plugin/custom_scalars/layout")
    categories = {c["title"]: {ch["title"]: ch["multiline"]["tag"] for ch in c["chart"]} for c in layout["category"]}
    assert categories["mlp: train and val"]["loss"] == ["^(train|val)/loss$"], categories
    assert categories["mlp: train and val"]["acc"] == ["^(train|val)/acc$"]
    tags = _get(f"{base}/data/plugin/scalars/tags")
    assert set(tags) == set(runs)
    assert not [run for run, t in tags.items() if "epoch" in t], tags  # the old run's too, once fixed
    assert all({"train/loss", "val/loss", "hp/best"} <= set(t) for t in tags.values())


def test_scalars_layout_groups_tags_by_family_pair_and_section():
    layout = scalars_layout("gan", ["train/d_loss", "train/g_loss", "val/score", "val/modes", "diag/x", "test/score",
                                    "hp/best", "epoch"])
    assert layout["gan: train and val"] == {"D and G losses": ["Multiline", ["^(train)/(d_loss|g_loss)$"]],
                                            "modes": ["Multiline", ["^(val)/modes$"]],
                                            "score": ["Multiline", ["^(val)/score$"]]}
    assert layout["diagnostics"] == {"diag/x": ["Multiline", ["^diag/x$"]]}
    assert set(layout) == {"gan: train and val", "diagnostics"}  # no test/, hp/ or epoch chart
    more = scalars_layout("mlp", ["train/loss", "health/grad_norm"], sections={"diag": "diagnostics", "health": "health"})
    assert more["health"] == {"health/grad_norm": ["Multiline", ["^health/grad_norm$"]]}


def test_seeds_are_aggregated_and_sweeps_kept_apart(logs):
    logdir, out = logs
    (sweep_a,) = (logdir / "mlp_xor" / "multiruns").iterdir()
    md = (sweep_a / "sweep.md").read_text()
    assert "## Seeds aggregated" in md
    rows = [ln for ln in md.splitlines() if ln.startswith("| optimizer=")]
    assert [r.split(" | ")[1:3] for r in rows] == [["2", "1,2"], ["2", "1,2"]], md  # n and the seeds, per setting
    assert all(" ± " in r for r in rows)
    with open(sweep_a / "sweep.csv") as f:
        table = list(csv.DictReader(f))
    assert {r["setting"] for r in table} == {"optimizer=sgd", "optimizer=adam"} and {r["n"] for r in table} == {"2"}
    sgd = [r for r in table if r["setting"] == "optimizer=sgd"]
    mean = sum(float(r["best"]) for r in sgd) / 2
    assert float(sgd[0]["best_mean"]) == pytest.approx(mean, rel=1e-3) and float(sgd[0]["best_std"]) >= 0
    with open(logdir / "sweep.csv") as f:  # dlf-compare logs/ (the fixture ran it over the whole log dir)
        everything = list(csv.DictReader(f))
    parents = [str(Path(r["run_dir"]).parent) for r in everything]
    blocks = [p for i, p in enumerate(parents) if i == 0 or p != parents[i - 1]]
    assert len(blocks) == len(set(blocks)) == 3, parents  # each sweep's jobs together: no 0, 0, 1, 1
    jobs_a = [int(r["job"]) for r in everything if str(sweep_a) in r["run_dir"]]
    assert jobs_a == [0, 1, 2, 3]
    (old,) = [r for r in everything if OLD_RUN.name in r["run_dir"]]  # the old layout (events in tensorboard/) read
    assert old["status"] == "ok" and old["steps"] == "100" and float(old["best"]) == pytest.approx(0.1115, rel=1e-3)
    from dlf.tools.compare import read_run

    curves = read_run(Path(old["run_dir"])).curves
    assert len(curves["train/loss"][0]) >= 10 and "epoch" not in curves  # its curves, for sweep.png


def test_console_one_summary_per_architecture_one_line_bar_and_honest_hint(logs):
    _, out = logs
    a = out["a"]
    assert a.count("┏") == 1 and a.count("Model: as job 0's summary above (21 parameters)") == 3, a[:3000]
    b = out["b"]
    assert b.count("┏") == 2 and "Model: as job" not in b  # two widths: two architectures
    epochs = [ln for ln in a.splitlines() if ln.startswith("Epoch ")]
    assert len(epochs) == 4 and all("val/acc" in ln and " left " in ln for ln in epochs), epochs  # one line each
    assert "tensorboard --logdir" in out["single"]
    run_line = next(ln for ln in out["csv"].splitlines() if ln.startswith("Run dir:"))
    assert "tensorboard" not in run_line  # logger=csv wrote no event file
