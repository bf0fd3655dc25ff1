"""The adding problem in Hochreiter & Schmidhuber's 1997 form (data.variant=hochreiter1997, experiment=lstm_adding_1997):
the generated sequences obey the paper's rules, a run logs test/wrong and test/sequences_to_success and stops at the
success criterion, through `python train.py ...`; the T = 100 success itself is a slow test."""

from __future__ import annotations

import json
import math

import pytest
import torch

import dlf
from dlf.data.adding import TOLERANCE, AddingDataModule
from dlf.run.checkpoint import load_run


@pytest.mark.parametrize("T", [4, 20, 100, 500])
def test_1997_sequences_obey_the_papers_rules(T):
    n = 4000
    dm = AddingDataModule(variant="hochreiter1997", seq_len=T, n_train=n, n_val=10, n_test=10, data_seed=T)
    facts = dm.prepare()
    x, y = dm.train
    width = T + T // 10
    assert x.shape == (n, width, 2) and y.shape == (n, 1) and facts.input_shape == (width, 2)
    assert facts.extra["tolerance"] == TOLERANCE == 0.04
    values, markers = x[..., 0], x[..., 1]
    steps = torch.arange(width).expand(n, width)
    start = (markers != 0).float().argmax(1)                       # the first non-zero marker opens the sequence
    length = width - start
    assert int(length.min()) >= T and int(length.max()) <= width   # lengths T .. T + T/10
    if T >= 20:
        assert set(length.tolist()) == set(range(T, width + 1))    # every length occurs
    pad = steps < start[:, None]
    assert torch.all(values[pad] == 0) and torch.all(markers[pad] == 0)   # (0, 0) in front of a shorter sequence
    assert torch.all(values.abs() <= 1) and float(values[~pad].min()) < -0.9 and float(values[~pad].max()) > 0.9
    assert torch.all((markers == 1).sum(1) == 2)                   # exactly two marked pairs
    marked = torch.sort(torch.nonzero(markers == 1)[:, 1].view(n, 2), 1).values - start[:, None]  # offsets
    assert torch.all(marked[:, 1] <= T // 2 - 1)                   # both among the first T/2 pairs: lag >= T/2
    lag = length - 1 - marked[:, 1]                                # from the last mark to the end
    assert int(lag.min()) >= T // 2 and (T > 100 or int(lag.min()) == T // 2)  # the minimal lag T/2 occurs
    assert torch.all(marked[:, 0] < 10)                            # one of the first ten
    if T >= 100:
        assert set(marked[:, 1].tolist()) >= set(range(10, T // 2))  # the second mark anywhere in the first half
    assert torch.all(markers[:, -1] == -1)                         # the last pair's marker
    first = markers[torch.arange(n), start]
    assert torch.all((first == -1) | (first == 1))                 # the first pair: -1, unless marked ...
    assert torch.all(values[torch.arange(n), start][first == 1] == 0)  # ... and then its value is 0
    others = ~pad & (markers != 1)
    others[torch.arange(n), start] = False
    others[:, -1] = False
    assert torch.all(markers[others] == 0)                         # all other markers 0
    X = (values * (markers == 1)).sum(1, keepdim=True)
    torch.testing.assert_close(y, 0.5 + X / 4.0, rtol=0, atol=1e-6)  # target 0.5 + (X1 + X2) / 4
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_default_variant_is_arjovsky_2016():
    dm = AddingDataModule(seq_len=20, n_train=500, n_val=10, n_test=10)
    facts = dm.prepare()
    x, y = dm.train
    assert dm.variant == "arjovsky2016" and x.shape == (500, 20, 2) and "tolerance" not in facts.extra
    assert float(x[..., 0].min()) >= 0 and torch.all((x[..., 1] == 1).sum(1) == 2)
    torch.testing.assert_close(y[:, 0], (x[..., 0] * x[..., 1]).sum(1))


def test_1997_run_stops_at_success_and_reports_it(tmp_path, run_cli, root):
    """T = 10 reaches the criterion within seconds: the run stops there, sequences_to_success = steps x 50, and
    test/wrong is the count of test sequences off by >= 0.04 under the tested checkpoint, out of n_test."""
    r = run_cli(["experiment=lstm_adding_1997", "data.seq_len=10", "data.n_train=20000", "data.n_val=500",
                 "data.n_test=500", "model.net.hidden_size=32", "trainer.val_check_interval=25", "logger=csv",
                 "trainer.max_steps=3000", "seed=0"], cwd=tmp_path, env={"PYTHONPATH": str(root / "src")})
    assert r.returncode == 0, r.stderr[-3000:]
    run = next(p.parent for p in tmp_path.rglob("result.json"))
    res = json.loads((run / "result.json").read_text())
    test = res["test"]
    assert "success after" in r.stdout + r.stderr
    assert test["test/sequences_to_success"] == res["steps"] * 50 and res["steps"] % 25 == 0 and res["steps"] < 3000
    loaded = load_run(run, ckpt="best", data=True)
    x, y = loaded.datamodule.test
    err = dlf.load(run).predict(x) - y[:, 0]
    assert test["test/wrong"] == int((err.abs() >= TOLERANCE).sum())
    assert abs(test["test/mse"] - float((err ** 2).mean())) < 1e-6


def test_1997_run_that_never_succeeds_says_so(tmp_path, run_cli, root):
    r = run_cli(["experiment=lstm_adding_1997", "data.seq_len=10", "data.n_train=500", "data.n_val=100",
                 "data.n_test=100", "model.net.hidden_size=8", "trainer.max_steps=20", "trainer.val_check_interval=10",
                 "logger=none"], cwd=tmp_path, env={"PYTHONPATH": str(root / "src")})
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(next(tmp_path.rglob("result.json")).read_text())
    assert res["steps"] == 20 and res["test"]["test/sequences_to_success"] is None   # NaN: never met
    assert 0 < res["test"]["test/wrong"] <= 100 and res["test"]["test/wrong"] == int(res["test"]["test/wrong"])


# ---- the full target (pytest -m slow) ------------------------------------------------------------------------------
@pytest.mark.slow
def test_lstm_solves_the_1997_adding_problem_T100(tmp_path, make_cfg):
    """experiment=lstm_adding_1997, T = 100, seed 1: the success criterion (no wrong validation sequence of 2,560, training
    MSE < 0.01) is met within the 10,000-step budget (500,000 sequences; the paper: 74,000), and at most 1 % of the
    2,560 test sequences are wrong. The issue's target (#31, 1a). With chrono: 65,000 sequences, 3 wrong (seeds 2, 3:
    65,000 and 80,000; docs/sequence.md); without it (forget bias 1 or 3) the plateau lasted all 500,000."""
    from dlf.run.train import run

    m = run(make_cfg(["experiment=lstm_adding_1997", "logger=none", "seed=1"], tmp_path, fast=False))
    assert math.isfinite(m["test/sequences_to_success"]) and m["test/sequences_to_success"] <= 500_000
    assert m["test/wrong"] <= 26  # at most 1 % of the 2,560 test sequences
