"""The Fréchet distance in dlf's feature nets (dlf.metrics.frechet): the closed form on Gaussians, ~0 for a set with
itself, the shipped nets' cards and a damaged file in one line, and a DCGAN run on digits that logs it between its
floor (real train vs real test) and its ceiling (uniform noise vs test)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
import scipy.linalg
import torch

from dlf.errors import DlfError
from dlf.metrics import frechet


def _with_moments(n: int, mean: torch.Tensor, cov: torch.Tensor, seed: int) -> torch.Tensor:
    """n points whose sample mean is exactly `mean` and sample covariance (1/(n-1)) exactly `cov`."""
    x = torch.randn(n, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = x - x.mean(0)
    white = torch.linalg.solve_triangular(torch.linalg.cholesky(x.T @ x / (n - 1)), x.T, upper=False).T
    return white @ torch.linalg.cholesky(cov).T + mean


def test_closed_form_on_gaussians_by_hand():
    """N([0,0,0], I) vs N([1,0,0], diag(4, 1, 1/4)): |mu1-mu2|^2 = 1, tr(S1 + S2 - 2 (S1 S2)^1/2) = (1+4-4) + (1+1-2)
    + (1 + 1/4 - 1) = 1.25, so FD = 2.25."""
    a = _with_moments(500, torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64), 0)
    b = _with_moments(500, torch.tensor([1.0, 0, 0], dtype=torch.float64),
                      torch.diag(torch.tensor([4.0, 1, 0.25], dtype=torch.float64)), 1)
    assert frechet.frechet_distance(a, b) == pytest.approx(2.25, abs=1e-6)
    assert frechet.frechet_distance(b, a) == pytest.approx(2.25, abs=1e-6)


def test_closed_form_on_gaussians_that_do_not_commute():
    g = torch.Generator().manual_seed(3)
    m1, m2 = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    r1, r2 = torch.randn(5, 5, generator=g, dtype=torch.float64), torch.randn(5, 5, generator=g, dtype=torch.float64)
    s1, s2 = r1 @ r1.T + 0.1 * torch.eye(5), r2 @ r2.T + 0.1 * torch.eye(5)
    want = float((m1 - m2).square().sum() + torch.trace(s1 + s2)
                 - 2 * scipy.linalg.sqrtm((s1 @ s2).numpy()).real.trace())
    got = frechet.frechet_distance(_with_moments(400, m1, s1, 4), _with_moments(400, m2, s2, 5))
    assert got == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("data", ["digits", "fashion_mnist"])
def test_the_shipped_net_loads_checked_and_a_set_is_at_zero_from_itself(data):
    info = frechet.card(data)
    path = frechet.store_dir() / f"{data}.pt"
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["name"] == frechet.name(data) and "FID" not in info["name"] and info["test_acc"] > 0.85
    net = frechet.load(data)
    x = torch.rand(300, *info["image_shape"], generator=torch.Generator().manual_seed(7)) ** 3  # not uniform
    assert net(x).shape == (300, info["features"])
    same = frechet.Frechet(net, x)
    assert abs(same.fd(x)) < 1e-6 * same.ceiling() and same.ceiling() > 0
    assert same.ceiling() == same.ceiling()  # the noise is seeded: the ceiling is one number


@pytest.fixture
def nets(tmp_path, monkeypatch):
    copy = tmp_path / "feature_nets"
    shutil.copytree(frechet.store_dir(), copy)
    monkeypatch.setattr(frechet, "store_dir", lambda: copy)
    return copy


def test_a_damaged_or_missing_feature_net_is_one_line(nets):
    path = nets / "digits.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DlfError, match=r"FD-dlf-digits-16, .*digits.pt, is damaged \(sha256 ") as e:
        frechet.load("digits")
    assert "\n" not in str(e.value) and "scripts/train_feature_nets.py digits" in str(e.value)
    path.unlink()
    with pytest.raises(DlfError, match=r"digits.pt, is missing: reinstall dlf"):
        frechet.load("digits")
    with pytest.raises(DlfError, match="ships no feature net for data=cifar10"):
        frechet.load("cifar10")


def test_the_script_rebuilds_the_shipped_digits_net_bit_for_bit(tmp_path, root):
    """scripts/train_feature_nets.py is seeded and deterministic on one thread: the digits net it writes has the
    shipped file's sha256 (the one its card and docs/results.md quote)."""
    r = subprocess.run([sys.executable, str(root / "scripts" / "train_feature_nets.py"), "digits", "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root / "src")})
    assert r.returncode == 0, r.stderr[-2000:]
    sha = json.loads((tmp_path / "digits.json").read_text())["sha256"]
    assert sha == hashlib.sha256((tmp_path / "digits.pt").read_bytes()).hexdigest() == frechet.card("digits")["sha256"]
    assert f"sha256 {sha}" in r.stdout


def _metrics(run_dir) -> dict:
    return json.loads(next(run_dir.rglob("result.json")).read_text())


@pytest.mark.slow  # a trained DCGAN through the command line: ~1-2 minutes on 2 busy cores
def test_a_dcgan_run_logs_the_distance_between_floor_and_ceiling(tmp_path, run_cli, root):
    """`python train.py model=dcgan` on digits, 40 epochs (about 1/4 of its default): the run logs val/fd each
    validation and test/fd with its floor and ceiling at the same N (the 360 test images), floor < DCGAN < ceiling,
    with the DCGAN well below the noise (after its first epoch it is above it); `dlf-generate` prints the three."""
    r = run_cli(["model=dcgan", "trainer.max_epochs=40", "seed=1", "logger=csv"], cwd=tmp_path, timeout=900,
                env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    rec = _metrics(tmp_path / "logs")
    m = rec["test"]
    floor, fd, noise = m["test/fd_floor"], m["test/fd"], m["test/fd_noise"]
    assert 0 < floor < fd < noise, (floor, fd, noise)
    assert fd < 0.75 * noise, (floor, fd, noise)
    rows = list(csv.DictReader(next((tmp_path / "logs").rglob("metrics.csv")).open()))
    val = [float(r["val/fd"]) for r in rows if r.get("val/fd")]
    assert len(val) == 40 and val[0] > fd, val  # one a validation, and training brought it down
    run_dir = next((tmp_path / "logs").rglob("result.json")).parent
    g = subprocess.run([sys.executable, "-m", "dlf.tools.generate", str(run_dir), "-n", "16"], capture_output=True,
                       text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root / "src")})
    assert g.returncode == 0, g.stderr[-2000:]
    line = next(ln for ln in g.stdout.splitlines() if ln.startswith("FD-dlf-digits-16"))
    assert "for 360 samples against 360 test images" in line and f"floor {floor:.4g}" in line, line
    assert f"ceiling {noise:.4g}" in line, line


def test_a_run_with_a_damaged_feature_net_stops_before_training_in_one_line(nets, tmp_path, make_cfg):
    """The net is loaded (and its sha256 checked) when the GAN is set up, not at the first validation an epoch later."""
    from dlf.run.train import run

    path = nets / "digits.pt"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DlfError, match=r"FD-dlf-digits-16, .*digits.pt, is damaged") as e:
        run(make_cfg(["model=dcgan", "logger=none"], tmp_path))
    assert "\n" not in str(e.value)
    assert not list(tmp_path.rglob("*.ckpt")), "it trained before it checked"
