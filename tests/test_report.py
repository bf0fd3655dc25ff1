"""report.html (dlf.tools.report), as a user gets it: `python train.py` (the XOR default) writes one into its run dir
and a sweep into its sweep dir, each a single file — every image inside it as a data: URI, nothing loaded from
anywhere — holding the command, the resolved config, the test metrics and predictions, the metric curves, every PNG
the run wrote, and for a sweep the seeds aggregated and every job's curves. The XOR run's report is under 1 MB (its
time is measured by scripts/bench_report.py, not here). Opened from the file in headless Chromium (tests/browser.py),
every image loads and the console shows no error; without Chromium the browser test skips, under CI=true it fails.
DLF_REPORT_SCREENSHOTS=docs/figures writes report_run.png and report_sweep.png there.
"""

from __future__ import annotations

import base64
import os
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser import browser as open_browser
from browser import severe, state
from cli_server import shared_server

XOR_FAST = ["trainer.max_epochs=1", "data.repeats=10"]
SWEEP = ["-m", "optimizer=sgd,adam", "seed=1,2", *XOR_FAST]  # 2 settings x 2 seeds


class _Page(HTMLParser):
    """What a page would load by itself (src/href of img, script, link, iframe...), its images and links, its text."""

    def __init__(self):
        super().__init__()
        self.loads, self.imgs, self.links, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        if tag == "a":
            self.links.append(a.get("href"))
        self.loads += [a[k] for k in ("src", "href", "data", "srcset") if k in a and tag != "a"]
        assert tag not in ("script", "iframe", "object", "embed"), tag

    def handle_data(self, data):
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.text = "".join(page.text)
    return page


def _run_dir(stdout: str) -> Path:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("Run dir: "))
    return Path(line.split()[2])


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """`python train.py` (the XOR default, as the README starts), a logger=csv run, a report=false run and a sweep of
    2 optimizers x 2 seeds, each a command of its own (tests/cli_server.py), output not a terminal."""
    cwd = tmp_path_factory.mktemp("report")
    out = {}
    for name, args in (("xor", []), ("csv", ["logger=csv", *XOR_FAST]), ("off", ["report=false", *XOR_FAST]),
                       ("sweep", SWEEP)):
        r = shared_server().run(args, cwd=cwd)
        assert r.returncode == 0, (name, r.stdout[-2000:], r.stderr[-3000:])
        out[name] = r.stdout
    return cwd, out


def test_the_xor_run_writes_one_self_contained_report_under_1_mb(made):
    _, out = made
    run = _run_dir(out["xor"])
    report = run / "report.html"
    line = next(ln for ln in out["xor"].splitlines() if ln.startswith("Run dir: "))
    assert f"open {report}" in line and "tensorboard --logdir" in line  # the line points at it (and TensorBoard)
    size = report.stat().st_size
    print(f"\nreport: XOR run's report.html {size / 1e3:.0f} kB")
    assert size < 1_000_000
    page = _parse(report)
    assert all(u.startswith("data:") for u in page.loads), [u[:80] for u in page.loads if not u.startswith("data:")]
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", report.read_text()), "a URL the page would load"
    text = page.text
    assert "python train.py" in text  # the command
    assert "optimizer:" in text and "_target_: torch.optim.Adam" in text and "${" not in text  # the config, resolved
    assert f"output_dir: {run}" in text
    assert "test/acc" in text and "test/solved" in text  # the test metrics
    assert "y_hat" in text and "Predictions on the 4 training points" in text  # the predictions it printed
    embedded = {base64.b64decode(i["src"].split(",", 1)[1]) for i in page.imgs}
    pngs = sorted((run / "plots").glob("*.png"))
    assert {p.name for p in pngs} >= {"cost_curve.png", "decision_boundary.png"}
    assert all(p.read_bytes() in embedded for p in pngs)  # every figure the run wrote, byte for byte
    assert [i["alt"] for i in page.imgs].count("metric curves") == 1 and len(page.imgs) == len(pngs) + 1


def test_a_csv_run_has_its_curves_from_metrics_csv_and_report_false_writes_none(made):
    _, out = made
    run = _run_dir(out["csv"])
    line = next(ln for ln in out["csv"].splitlines() if ln.startswith("Run dir: "))
    assert "report.html" in line and "tensorboard" not in line  # no event files: the report alone
    page = _parse(run / "report.html")
    assert "metric curves" in [i["alt"] for i in page.imgs] and "no metrics logged" not in page.text
    off = _run_dir(out["off"])
    assert not (off / "report.html").exists() and (off / "result.json").is_file()
    assert "report.html" not in next(ln for ln in out["off"].splitlines() if ln.startswith("Run dir: "))


def _sweep_dir(cwd: Path) -> Path:
    (sweep,) = (cwd / "logs" / "mlp_xor" / "multiruns").iterdir()
    return sweep


def test_a_sweep_report_aggregates_the_seeds_and_links_every_job(made):
    cwd, out = made
    sweep = _sweep_dir(cwd)
    assert f"{sweep / 'report.html'}" in out["sweep"]  # among the summary's paths
    page = _parse(sweep / "report.html")
    assert all(u.startswith("data:") for u in page.loads)
    text = page.text
    assert "Seeds aggregated" in text and text.count(" ± ") >= 4  # 2 settings: best and last, mean ± std
    assert "optimizer=adam" in text and "optimizer=sgd" in text and "1,2" in text
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir() and not d.name.startswith("."))
    assert len(jobs) == 4
    assert sorted(page.links) == sorted(f"{d.name}/report.html" for d in jobs)  # relative: the dir can move
    assert all((d / "report.html").is_file() for d in jobs)
    assert {"sweep.png", "curves of every job"} <= {i["alt"] for i in page.imgs}


def test_reports_render_in_chromium_from_the_file(made, tmp_path):
    cwd, _ = made
    shots = Path(os.environ.get("DLF_REPORT_SCREENSHOTS") or tmp_path)
    pages = {"run": _run_dir(made[1]["xor"]) / "report.html", "sweep": _sweep_dir(cwd) / "report.html"}
    t0 = time.perf_counter()
    browser = open_browser(1280, 1000)
    try:
        for name, path in pages.items():
            browser.get(path.as_uri())
            from selenium.webdriver.support.ui import WebDriverWait

            WebDriverWait(browser, 30).until(lambda b: b.execute_script("return document.readyState") == "complete")
            s = state(browser)
            assert s["title"].startswith(f"dlf {name}"), s["title"]
            assert len(s["imgs"]) >= 2 and all(i["ok"] for i in s["imgs"]), (name, [i for i in s["imgs"] if not i["ok"]])
            assert not [u for u in s["resources"] if not u.startswith("data:")], (name, s["resources"])
            assert not severe(browser), name
            shots.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(shots / f"report_{name}.png"))
            print(f"report: {name}: {len(s['imgs'])} images loaded in Chromium, no console error")
    finally:
        browser.quit()
    print(f"report: the browser check took {time.perf_counter() - t0:.1f} s")


def test_report_must_be_a_bool_and_debug_fast_writes_none(tmp_path):
    r = shared_server().run(["report=maybe"], tmp_path)
    assert r.returncode == 2 and "report='maybe'" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    r = shared_server().run(["debug=fast", "hydra.run.dir=fast"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "fast" / "result.json").is_file() and not (tmp_path / "fast" / "report.html").exists()
    assert "report.html" not in r.stdout


def test_bench_report_measures_the_xor_run(made):
    """scripts/bench_report.py runs on the XOR run's dir (its verdict is the benchmark's business, not this test's)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    r = subprocess.run([sys.executable, str(root / "scripts" / "bench_report.py"), "--repeats", "1", "--run-dir",
                        str(_run_dir(made[1]["xor"]))], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1) and "report.html of an XOR run" in r.stdout, r.stdout + r.stderr[-2000:]
    assert re.search(r"first call \d+ ms wall, \d+ ms CPU", r.stdout), r.stdout


def test_dlf_compare_on_a_run_dir_keeps_the_runs_own_report(made):
    from dlf.tools.compare import summarize

    run = _run_dir(made[1]["csv"])
    before = (run / "report.html").read_bytes()
    summarize(run)
    assert (run / "report.html").read_bytes() == before and (run / "sweep.md").is_file()
