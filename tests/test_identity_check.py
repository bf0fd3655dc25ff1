"""scripts/identity_check.py's manifest and compare on tiny synthetic runs (no training): a changed tensor, optimizer
state or metric is reported; a changed OUT_DIR (every path inside the checkpoints and result.json) is not."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "identity_check.py"
spec = importlib.util.spec_from_file_location("identity_check", SCRIPT)
ic = importlib.util.module_from_spec(spec)
sys.modules["identity_check"] = ic  # dataclasses look their module up there
spec.loader.exec_module(ic)

METRICS = "epoch,step,train/loss,val/loss\n0,4,0.5,\n0,4,,0.25\n"


def _ckpt(out: Path, run: Path, w: torch.Tensor, exp_avg: torch.Tensor) -> dict:
    best = str(run / "checkpoints" / "best.ckpt")
    return {
        "epoch": 0, "global_step": 5, "pytorch-lightning_version": "2.6.6",
        "state_dict": {"net.weight": w, "net.bias": torch.zeros(2)},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(5.0), "exp_avg": exp_avg}},
                              "param_groups": [{"lr": 0.01, "betas": (0.9, 0.999), "params": [0]}]}],
        "callbacks": {"ModelCheckpoint{'monitor': 'val/loss'}": {
            "best_model_score": torch.tensor(0.25), "best_model_path": best, "dirpath": str(run / "checkpoints"),
            "best_k_models": {best: torch.tensor(0.25)}, "kth_best_model_path": best, "last_model_path": ""}},
        "dlf": {"run_dir": str(run), "task_name": "mlp_xor"},
    }


def _make(out: Path, *, w=None, exp_avg=None, metrics=METRICS, test_loss=0.25, wall_s=1.0) -> Path:
    """OUT_DIR with one configuration's run in it, and its manifest; returns OUT_DIR."""
    cfg = ic.CONFIGS[0]
    run = cfg.run_dir(out)
    (run / "checkpoints").mkdir(parents=True)
    (run / "csv").mkdir()
    (run / "csv" / "metrics.csv").write_text(metrics)
    (run / "result.json").write_text(json.dumps({
        "status": "ok", "best": 0.25, "test": {"test/loss": test_loss}, "wall_s": wall_s,
        "overrides": ["model=mlp_xor", f"paths.data_dir={out}/data"]}))
    w = torch.arange(6, dtype=torch.float32).reshape(2, 3) if w is None else w
    exp_avg = torch.ones(2, 3) if exp_avg is None else exp_avg
    for name in ("last", "best"):
        torch.save(_ckpt(out, run, w, exp_avg), run / "checkpoints" / f"{name}.ckpt")
    entry = {"overrides": cfg.overrides, "resume_overrides": None, **ic.describe_run(run, str(out))}
    (out / ic.MANIFEST).write_text(json.dumps({"environment": {}, "configs": {cfg.name: entry}}))
    return out


def _diffs(a: Path, b: Path) -> list[str]:
    ma, mb = (json.loads((d / ic.MANIFEST).read_text())["configs"] for d in (a, b))
    name = ic.CONFIGS[0].name
    return ic.diff_entries(ma[name], mb[name])


def test_other_out_dir_and_wall_time_are_identical(tmp_path, capsys):
    a = _make(tmp_path / "a")
    b = _make(tmp_path / "somewhere" / "else", wall_s=99.0)
    assert _diffs(a, b) == []
    assert ic.compare(a, b) == 0
    assert "identical" in capsys.readouterr().out
    files = json.loads((a / ic.MANIFEST).read_text())["configs"][ic.CONFIGS[0].name]["files"]
    leaves = files["checkpoints/last.ckpt"]
    assert leaves["dlf/run_dir"] == 'str "<OUT>/mlp_xor/run"'  # normalised, still compared
    assert any(k.endswith("best_k_models/<OUT>/mlp_xor/run/checkpoints/best.ckpt") for k in leaves)  # a path as dict key


@pytest.mark.parametrize("change, where", [
    ({"w": torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.000001]])}, "state_dict/net.weight"),
    ({"w": torch.arange(6, dtype=torch.float64).reshape(2, 3)}, "state_dict/net.weight"),  # same values, other dtype
    ({"w": torch.arange(6, dtype=torch.float32).reshape(3, 2)}, "state_dict/net.weight"),  # same bytes, other shape
    ({"exp_avg": torch.full((2, 3), 2.0)}, "optimizer_states/0/state/0/exp_avg"),
    ({"metrics": METRICS.replace("0.25", "0.2500001")}, "metrics.csv"),
    ({"test_loss": 0.2500001}, "result.json: test/test/loss"),
])
def test_a_changed_tensor_or_metric_is_reported(tmp_path, capsys, change, where):
    a = _make(tmp_path / "a")
    b = _make(tmp_path / "b", **change)
    diffs = _diffs(a, b)
    assert diffs and where in diffs[0]
    assert ic.compare(a, b) == 1
    out = capsys.readouterr().out
    assert "DIFFERENT" in out and where in out


def test_a_missing_checkpoint_is_reported(tmp_path):
    a = _make(tmp_path / "a")
    b = _make(tmp_path / "b")
    (ic.CONFIGS[0].run_dir(b) / "checkpoints" / "best.ckpt").unlink()
    entry = ic.describe_run(ic.CONFIGS[0].run_dir(b), str(b))
    ma = json.loads((a / ic.MANIFEST).read_text())["configs"][ic.CONFIGS[0].name]
    assert ic.diff_entries(ma, entry) == ["checkpoints/best.ckpt: missing in B"]


def test_flatten_normalises_paths_keeps_values():
    flat = ic.flatten({"a": {"p": "/x/out/run/c.ckpt", "n": float("nan"), "t": (1, 2)}, "e": {}}, "/x/out")
    assert flat == {"a/p": 'str "<OUT>/run/c.ckpt"', "a/n": "float NaN", "a/t/0": "int 1", "a/t/1": "int 2",
                    "e": "dict {}"}
