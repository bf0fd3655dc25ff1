"""Kill a real training process (SIGKILL, SIGTERM, SIGINT) at several points, resume it with ckpt_path=last, and check
that it ends with bit-identical weights, optimizer state and test metrics to the same run left alone, in the same run
dir. To cover a new model family add its name and small limits to RESUME_MODELS."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from cli_server import DATA_CACHE, run_train, shared_server

# model name -> overrides that keep its run to a few dozen steps (>= 3 epochs, >= 6 steps an epoch)
RESUME_MODELS = {
    "mlp_xor": ["model=mlp_xor", "data.repeats=9", "trainer.max_epochs=3"],
    "mlp": ["model=mlp", "trainer.max_epochs=3", "trainer.limit_train_batches=7", "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=2"],
    "cnn": ["model=cnn", "trainer.max_epochs=3", "trainer.limit_train_batches=7", "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=2", "callbacks.cnn_figures=null"],
    "rnn": ["model=rnn", "trainer.max_epochs=3", "trainer.limit_train_batches=7", "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=2", "model.net.hidden_size=16"],
    "lstm": ["model=lstm", "data=adding", "data.seq_len=20", "trainer.max_epochs=3", "trainer.limit_train_batches=7",
             "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "model.net.hidden_size=16"],
    "gan": ["model=gan", "trainer.max_epochs=3", "trainer.limit_train_batches=7", "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1"],
}
COMMON = ["trainer=cpu", "trainer.deterministic=true", "logger=csv", "callbacks.step_checkpoint.every_n_train_steps=4",
          "callbacks.model_summary=null", "trainer.enable_progress_bar=false"]
# (signal, step, where): see tests/killers.py. Steps are optimizer steps; a last.ckpt is written every 4 steps and
# at each epoch end, so SIGKILL at step 10 must redo steps 8-9, while SIGTERM/SIGINT save at the batch end.
KILLS = [
    ("SIGKILL", 10, "batch_start"),
    ("SIGTERM", 5, "batch_end"),
    ("SIGINT", 7, "batch_start"),
    ("SIGKILL", 1, "val_end"),      # right after the 2nd epoch's validation, before its epoch-end save
]
EXIT = {"SIGKILL": -9, "SIGTERM": 143, "SIGINT": 130}
# Lightning counts every optimizer step in global_step: the GAN steps D and G on each batch, so its global step moves
# by 2 a batch and the kill points above (in batches) are scaled to land on a step it actually reaches.
STEPS_PER_BATCH = {"gan": 2}


@pytest.fixture(scope="module")
def server():
    return shared_server()


@pytest.fixture(scope="module")
def shared_data() -> Path:
    return DATA_CACHE


def _args(model: str, data_dir: Path) -> list[str]:
    return [*RESUME_MODELS[model], *COMMON, f"paths.data_dir={data_dir}"]


def _runs(root: Path, model: str) -> list[Path]:
    return sorted((root / "logs").glob("*/runs/*"))


def assert_same(a, b, where="checkpoint"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(map(str, set(a) ^ set(b)))} differ"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _final(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def _test_line(stdout: str) -> str:
    m = re.search(r"^Test: .*$", stdout, re.M)
    assert m, f"no Test: line in\n{stdout[-2000:]}"
    return m.group(0)


_BASELINES: dict = {}


def _baseline(server, model, data_dir, tmp_path_factory):
    if model not in _BASELINES:
        root = tmp_path_factory.mktemp(f"base_{model}")
        r = server.run(_args(model, data_dir), cwd=root)
        assert r.returncode == 0, r.stderr[-3000:]
        (run,) = _runs(root, model)
        _BASELINES[model] = (_final(run), _test_line(r.stdout))
    return _BASELINES[model]


def _check_resumed(root: Path, model: str, r, baseline) -> None:
    assert r.returncode == 0, r.stderr[-3000:]
    runs = _runs(root, model)
    assert len(runs) == 1, f"the resumed run made a new run dir: {runs}"
    assert f"Run dir: {runs[0]}" in r.stdout.replace(str(runs[0].resolve()), str(runs[0]))
    final, test_line = baseline
    got = _final(runs[0])
    assert got["global_step"] == final["global_step"]
    assert_same(final["state_dict"], got["state_dict"], "state_dict")
    assert_same(final["optimizer_states"], got["optimizer_states"], "optimizer_states")
    assert _test_line(r.stdout) == test_line
    metrics = runs[0] / "csv" / "metrics.csv"
    assert metrics.is_file()  # the resumed run logs into the original run dir


# Every family at every kill point, in the default suite (each case is a few dozen steps through the fork server).
CASES = [pytest.param(m, *k, id=f"{m}-{k[0]}-{k[2]}-{k[1]}") for m in RESUME_MODELS for k in KILLS]


@pytest.mark.parametrize("model,sig,step,where", CASES)
def test_killed_run_resumes_exactly(model, sig, step, where, server, shared_data, tmp_path, tmp_path_factory):
    baseline = _baseline(server, model, shared_data, tmp_path_factory)
    per_batch = STEPS_PER_BATCH.get(model, 1)
    at = step * per_batch if where != "val_end" else step  # val_end counts epochs
    kill = ["+callbacks.kill._target_=killers.KillAt", f"+callbacks.kill.step={at}", f"+callbacks.kill.sig={sig}",
            f"+callbacks.kill.where={where}"]
    r = server.run(_args(model, shared_data) + kill, cwd=tmp_path)
    assert r.returncode == EXIT[sig], (r.returncode, r.stderr[-3000:])
    (run,) = _runs(tmp_path, model)
    assert (run / "checkpoints" / "last.ckpt").is_file()
    if sig != "SIGKILL":  # a clean stop: one line that says where the checkpoint is and how to resume
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith(f"dlf: error: stopped by {sig}, saved ") and "ckpt_path=last" in last
        # the guard stops at the first batch end after the signal (KillAt fires after the guard's own batch-end hook)
        assert _final(run)["global_step"] == (step + 1) * per_batch
    r2 = server.run(_args(model, shared_data) + ["ckpt_path=last"], cwd=tmp_path)
    _check_resumed(tmp_path, model, r2, baseline)


@pytest.mark.slow
def test_plain_subprocess_sigkill_resume(server, shared_data, tmp_path, tmp_path_factory):
    """The same check without the fork server: `python train.py` killed by SIGKILL, resumed by explicit path."""
    baseline = _baseline(server, "mlp_xor", shared_data, tmp_path_factory)
    kill = ["+callbacks.kill._target_=killers.KillAt", "+callbacks.kill.step=14", "+callbacks.kill.sig=SIGKILL"]
    r = run_train(_args("mlp_xor", shared_data) + kill, cwd=tmp_path)
    assert r.returncode == -9, r.stderr[-3000:]
    (run,) = _runs(tmp_path, "mlp_xor")
    assert _final(run)["global_step"] == 12
    r2 = run_train(_args("mlp_xor", shared_data) + [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"], cwd=tmp_path)
    _check_resumed(tmp_path, "mlp_xor", r2, baseline)


@pytest.mark.slow
def test_resume_twice(server, shared_data, tmp_path, tmp_path_factory):
    """Killed twice, resumed twice: still exact."""
    baseline = _baseline(server, "mlp", shared_data, tmp_path_factory)
    for step in (6, 13):
        kill = ["+callbacks.kill._target_=killers.KillAt", f"+callbacks.kill.step={step}", "+callbacks.kill.sig=SIGKILL"]
        extra = ["ckpt_path=last"] if step == 13 else []
        r = server.run(_args("mlp", shared_data) + kill + extra, cwd=tmp_path)
        assert r.returncode == -9, r.stderr[-3000:]
    r = server.run(_args("mlp", shared_data) + ["ckpt_path=last"], cwd=tmp_path)
    _check_resumed(tmp_path, "mlp", r, baseline)
