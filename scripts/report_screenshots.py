"""The README's screenshots of dlf's dashboards: a run's and a sweep's report.html, and TensorBoard's Scalars and
HPARAMS pages over the same log dir, taken with headless Chromium (tests/browser.py, as the tests open pages).

    OMP_NUM_THREADS=1 python scripts/report_screenshots.py [--out docs/figures] [--logdir DIR]

Trains the XOR default (`python train.py`) and a sweep of 2 optimizers x 2 seeds into DIR (default: a temporary dir;
a DIR that holds them already is used as it is),
then writes report_run.png, report_sweep.png, tensorboard_scalars.png and tensorboard_hparams.png into --out. About two
minutes on two cores. tests/test_report.py checks the reports render (every image, no console error);
tests/test_dashboards.py checks what TensorBoard serves.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
RUNS = [[], ["-m", "optimizer=sgd,adam", "seed=1,2"]]


def _check(ok: bool, what: str) -> None:
    if not ok:
        sys.exit(f"report_screenshots: {what}")


def _train(logdir: Path) -> tuple[Path, Path]:
    """The run's and the sweep's report (trained first unless --logdir holds them already)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = list(logdir.glob("mlp_xor/runs/*/report.html")) and list(logdir.glob("mlp_xor/multiruns/*/report.html"))
    for args in [] if done else RUNS:
        r = subprocess.run([sys.executable, str(ROOT / "train.py"), *args, f"paths.log_dir={logdir}"], cwd=logdir.parent,
                           env=env, capture_output=True, text=True, timeout=900)
        _check(r.returncode == 0, f"python train.py {' '.join(args)} failed: {r.stderr[-2000:]}")
    run = sorted(logdir.glob("mlp_xor/runs/*"))[-1]
    sweep = sorted(logdir.glob("mlp_xor/multiruns/*"))[-1]
    return run / "report.html", sweep / "report.html"


def _shoot(driver, url: str, path: Path, settle: float = 1.0, height: int | None = None) -> None:
    driver.get(url)
    for _ in range(100):
        if driver.execute_script("return document.readyState") == "complete":
            break
        time.sleep(0.1)
    time.sleep(settle)
    if height:
        driver.set_window_size(1280, height)
    driver.save_screenshot(str(path))
    print(f"report_screenshots: {path}")


def _tensorboard(logdir: Path, port: int):
    exe = Path(sys.executable).parent / "tensorboard"
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "tensorboard.main"]
    proc = subprocess.Popen([*cmd, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(120):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=2) as r:
                if len(r.read()) > 10:
                    break
        except OSError:
            time.sleep(1)
    time.sleep(3)  # every run loaded
    return proc


def main() -> None:
    from browser import browser, free_port

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "figures")
    p.add_argument("--logdir", type=Path, default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        logdir = (args.logdir or Path(tmp) / "logs").resolve()
        logdir.mkdir(parents=True, exist_ok=True)
        run, sweep = _train(logdir)
        args.out.mkdir(parents=True, exist_ok=True)
        driver = browser(1280, 1000, check=_check)
        port = free_port()
        tb = _tensorboard(logdir, port)
        try:
            _shoot(driver, run.as_uri(), args.out / "report_run.png", height=1500)
            _shoot(driver, sweep.as_uri(), args.out / "report_sweep.png", height=1500)
            driver.set_window_size(1440, 900)
            _shoot(driver, f"http://127.0.0.1:{port}/#scalars&tagFilter=%5E(train%7Cval)%2F",  # ^(train|val)/
                   args.out / "tensorboard_scalars.png", settle=6)
            _shoot(driver, f"http://127.0.0.1:{port}/#hparams", args.out / "tensorboard_hparams.png", settle=6)
        finally:
            driver.quit()
            os.killpg(tb.pid, signal.SIGTERM)
            tb.wait(timeout=30)


if __name__ == "__main__":
    main()
